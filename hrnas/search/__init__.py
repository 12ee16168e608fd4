"""The HR-NAS search as a library: fine-grained progressive shrinking of a supernet to a budget.

supernet = hrnas.create_supernet('seg', num_classes=19)
result = hrnas.search(supernet, train_set, val_set, budget='1.4G', input_size=(512, 512), epochs=50)
result.model      # a plain, static HRNASNet with the trained weights
result.save('runs/my_search')
"""

from .config import SearchConfig
from .errors import SearchError
from .loop import search
from .result import SearchResult
from .supernet import create_supernet
from .tasks import Metric, Task, get_task

__all__ = ["Metric", "SearchConfig", "SearchError", "SearchResult", "Task", "create_supernet", "get_task", "search"]

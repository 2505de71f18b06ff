import importlib
import pkgutil

from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"

    def ready(self) -> None:
        # The worker (rundramatiq) only runs django.setup(); importing every module here is what
        # declares each actor on the broker before the worker starts consuming.
        package = importlib.import_module(self.name)
        for module in pkgutil.iter_modules(package.__path__):
            if module.name != "apps":
                importlib.import_module(f"{self.name}.{module.name}")

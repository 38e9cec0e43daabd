"""Every exception the project defines survives pickling, as it must to cross a process
boundary (a Ray call's result or failure): one that could not be rebuilt lost a whole
stage-two call's results. No cluster: plain pickling is what Ray does to them."""

import importlib
import inspect
import pickle
import pkgutil

import pytest

from multistage.models.records import FieldError
from multistage_client.errors import MultistageError
from multistage_client.models import ErrorBody

PACKAGES = ["multistage", "multistage_client", "deployments", "graphs", "demo", "ops"]
_ERROR = ErrorBody(error="deadline_passed", message="the deadline passed before stage two started")

# Constructor arguments for each exception, by class name: a new exception class fails
# the test below until it is given an example here.
EXAMPLES = {
    "MultistageError": ("a message",),
    "DeadlinePassed": (),
    "StageTwoError": (_ERROR,),
    "JournalUnavailable": ("the ticket journal did not take the submissions",),
    "StageTwoReplicaLost": ("ActorDiedError: the replica died",),
    "BodyTooLarge": (1024,),
    "UnsupportedMediaType": ("text/plain",),
    "RetryLater": ("try again", 3),
    "Overloaded": (),
    "TicketStoreUnavailable": (),
    "UnknownTicket": ("abc",),
    "InvalidRecord": ([FieldError("shift", "Input should be 'day'")], True),
    "ServiceError": (503, ErrorBody(error="overloaded", message="busy"), 1.5),
    "StageTwoFailed": ("ticket-1", "expired", _ERROR),
    "StreamRefused": (4401, "a valid API key is required"),
    "BadInput": ("record.json is not JSON",),
}


def _project_exceptions() -> list[type[BaseException]]:
    found = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for module_info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            module = importlib.import_module(module_info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                    found[cls.__qualname__] = cls
    return sorted(found.values(), key=lambda cls: cls.__qualname__)


PROJECT_EXCEPTIONS = _project_exceptions()


def test_the_walk_finds_the_projects_exceptions():
    names = {cls.__qualname__ for cls in PROJECT_EXCEPTIONS}
    assert {"DeadlinePassed", "StageTwoError", "InvalidRecord", "StageTwoFailed"} <= names


@pytest.mark.parametrize("cls", PROJECT_EXCEPTIONS, ids=lambda cls: cls.__qualname__)
def test_an_exception_round_trips_through_pickle_to_an_equal_value(cls):
    assert issubclass(cls, MultistageError), f"{cls.__qualname__} must derive MultistageError"
    assert cls.__qualname__ in EXAMPLES, f"give {cls.__qualname__} an example in EXAMPLES"
    error = cls(*EXAMPLES[cls.__qualname__])
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert type(copy) is cls
        assert (copy.args, vars(copy), str(copy)) == (error.args, vars(error), str(error))

"""Every data loader checks what it reads, and a bad file raises a DataError naming it and the fix.

`expect` is the shared assertion: the error is a DataError (a FileNotFoundError, so that `jdl`
exits 2 with the message), it carries the file, and its message names the file, what is wrong and
the command that installs or rebuilds it.
"""

import pytest

from jdl.data.errors import DataError


def expect(call, path, problem: str, fix: str) -> DataError:
  with pytest.raises(DataError) as info:
    call()
  error = info.value
  assert isinstance(error, FileNotFoundError)
  assert str(error.path) == str(path)
  message = str(error)
  assert message.startswith(f'{path}: ') and problem in message and fix in message, message
  return error

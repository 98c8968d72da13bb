"""The one error every data loader raises for a data file it cannot use."""

from __future__ import annotations

import os


class DataError(FileNotFoundError):
  """A data file is missing, or is not what it should be (cut, garbage, wrong dtype, values out of
  range). The message names the file, what is wrong and the command that installs or rebuilds it.

  It is a FileNotFoundError because the fix is the same as for a missing file (put the right file
  there), and so that `jdl` prints the message in one line and exits 2, without a traceback.
  """

  def __init__(self, path: str | os.PathLike, problem: str, fix: str):
    self.path = path
    super().__init__(f'{path}: {problem}; {fix}')

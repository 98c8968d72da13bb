"""The one packaging step pyproject.toml cannot state: a wheel carries `experiments/` inside the
package, as `jdl/experiments/`, so that an installed jdl lists and runs them from any directory
(`jdl list`; `--config experiments/...` falls back to that copy: jdl/paths.py). An editable
install reads the checkout's `experiments/` itself and copies nothing. The sdist takes the folder
through MANIFEST.in."""

import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithExperiments(build_py):
  def run(self):
    super().run()
    if self.editable_mode:
      return
    target = pathlib.Path(self.build_lib) / 'jdl' / 'experiments'
    shutil.rmtree(target, ignore_errors=True)  # no file left from an earlier build
    for source in sorted(pathlib.Path('experiments').glob('*/*.py')):
      destination = target / source.relative_to('experiments')
      self.mkpath(str(destination.parent))
      self.copy_file(str(source), str(destination))


setup(cmdclass={'build_py': BuildWithExperiments})

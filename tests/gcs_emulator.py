"""A local Cloud Storage emulator for gs:// workdirs (the `gcs` fixture): gcp-storage-emulator on
a free port of 127.0.0.1, with the generation preconditions that tensorstore and the workdir lease
rely on. tests/conftest.py registers this module as a plugin, so every test can ask for `gcs`;
the emulator's modules are imported only by a test that does."""

import functools
import logging
import socket
from http import HTTPStatus

import pytest

BUCKET = 'jdl-runs'
# Object names under these prefixes refuse writes with 403, as a bucket does whose permission was
# revoked in the middle of a run (a test adds and removes them).
FORBIDDEN: set[str] = set()


def _generation(store, bucket: str, name: str) -> str:
  from gcp_storage_emulator.exceptions import NotFound

  try:
    return store.get_file_obj(bucket, name)['generation']
  except NotFound:
    return '0'  # Cloud Storage's generation of an object that does not exist


def _object_name(request) -> str | None:
  if 'object_id' in (request.params or {}):
    return request.params['object_id']
  if 'name' in request.query:
    return request.query['name'][0]
  data = request.data  # else the upload's metadata names it (a multipart or resumable one)
  if not isinstance(data, dict):
    return None
  return data['meta'].get('name') if 'meta' in data else data.get('name')


def _with_generations(handler, reads: bool):
  """gcp-storage-emulator keeps a generation per object but neither honours the generation
  preconditions (ifGenerationMatch, ifGenerationNotMatch) nor sends the x-goog-generation header
  of a download: tensorstore's checkpoint writes and the workdir lease rely on both. This adds
  them as Cloud Storage has them (412, or 304 for a read); the emulator serves one request at a
  time, so a check and the write after it are one step."""

  @functools.wraps(handler)
  def handle(request, response, store, *args, **kwargs):
    bucket, name = request.params['bucket_name'], _object_name(request)
    if name is not None and not reads and any(name.startswith(p) for p in FORBIDDEN):
      response.status = HTTPStatus.FORBIDDEN
      return
    if name is not None:
      current = _generation(store, bucket, name)
      match = request.query.get('ifGenerationMatch', [None])[0]
      not_match = request.query.get('ifGenerationNotMatch', [None])[0]
      if match is not None and match != current:
        response.status = HTTPStatus.PRECONDITION_FAILED
        return
      if not_match is not None and not_match == current:
        response.status = HTTPStatus.NOT_MODIFIED if reads else HTTPStatus.PRECONDITION_FAILED
        return
    handler(request, response, store, *args, **kwargs)
    if name is not None and reads and response.status == HTTPStatus.OK:
      response['x-goog-generation'] = _generation(store, bucket, name)
      response['x-goog-metageneration'] = '1'

  return handle


def _whole_body(read):
  """A request cut short (its client killed mid-upload) stores nothing, as on Cloud Storage; the
  emulator would store the part that came."""

  @functools.wraps(read)
  def read_all(handler):
    data = read(handler)
    expected = handler.headers.get('Content-Length')
    if expected and len(data or b'') < int(expected):
      raise ConnectionError('the client went away in the middle of its request')
    return data

  return read_all


@pytest.fixture(scope='module')
def gcs():
  """The emulator, on a free port of 127.0.0.1, with an empty bucket; yields the environment that
  points every client at it, with no metadata server or credential lookup."""
  import fsspec
  from gcp_storage_emulator import server
  from gcp_storage_emulator.handlers import objects

  reads = {objects.get: True, objects.download: True, objects.insert: False, objects.delete: False}
  handlers = tuple(
    (route, {m: _with_generations(h, reads[h]) if h in reads else h for m, h in methods.items()})
    for route, methods in server.HANDLERS
  )
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
  url = f'http://127.0.0.1:{port}'
  env = {
    # gcsfs (etils.epath's gs:// backend) and google-cloud-storage (TensorBoard's writer, the
    # lease): this endpoint; google-cloud-storage then sends no credentials.
    'STORAGE_EMULATOR_HOST': url,
    'FSSPEC_GCS_TOKEN': 'anon',  # gcsfs: no credentials, so no lookup
    # gcsfs asks the gRPC storage-control API for a bucket's layout; the emulator has none.
    'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT': 'false',
    'TENSORSTORE_GCS_HTTP_URL': url,  # orbax's tensorstore
    'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'emulator',  # tensorstore: this token, no lookup
    # A credential lookup all the same would reach this closed port, never leave the machine.
    'GCE_METADATA_HOST': '127.0.0.1:1',
    'GCE_METADATA_ROOT': '127.0.0.1:1',
    'GCE_METADATA_IP': '127.0.0.1:1',
  }
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(server, 'HANDLERS', handlers)
    mp.setattr(server, '_read_raw_data', _whole_body(server._read_raw_data))
    # The emulator serves one request at a time: one from a stopped process must not hold it.
    mp.setattr(server.RequestHandler, 'timeout', 3)
    mp.setattr(logging.getLogger('gcp_storage_emulator'), 'disabled', True)  # each 404, at length
    for key, value in env.items():
      mp.setenv(key, value)
    # fsspec read its FSSPEC_* variables when it was imported, before this fixture.
    mp.setitem(fsspec.config.conf, 'gcs', {'token': 'anon'})
    emulator = server.create_server('127.0.0.1', port, in_memory=True, default_bucket=BUCKET)
    emulator.start()
    try:
      yield env
    finally:
      emulator.stop()

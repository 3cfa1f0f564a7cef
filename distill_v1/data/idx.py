"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a header followed by the array's values in row-major order:

  bytes 0-1   zero
  byte  2     data type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
              0x0D float32, 0x0E float64
  byte  3     number of dimensions, d
  4 * d bytes the dimension sizes, big-endian int32
  the data    prod(sizes) values, big-endian

Files may be gzip-compressed (recognised by their content, not their name,
because some mirrors serve decompressed files under `.gz` names). Every
problem with a file raises one `DataError` naming the file and the problem.

This module uses numpy and the standard library only, so that reading data
never waits for TensorFlow to import.
"""

import contextlib
import gzip
import os
import secrets
import zlib

import numpy as np

from distill_v1.errors import DataError

# Type code -> (numpy dtype of the stored big-endian values, readable name).
_IDX_DTYPES = {
    0x08: (np.dtype('u1'), 'uint8'),
    0x09: (np.dtype('i1'), 'int8'),
    0x0B: (np.dtype('>i2'), 'int16'),
    0x0C: (np.dtype('>i4'), 'int32'),
    0x0D: (np.dtype('>f4'), 'float32'),
    0x0E: (np.dtype('>f8'), 'float64'),
}
_TYPE_CODES = {np.dtype(dtype).newbyteorder('='): code
               for code, (dtype, _) in _IDX_DTYPES.items()}
_GZIP_MAGIC = b'\x1f\x8b'
_MAX_DIM = 2**31 - 1


def _describe_type_codes():
  return ', '.join('0x%02X (%s)' % (code, name)
                   for code, (_, name) in sorted(_IDX_DTYPES.items()))


def _read_file(path):
  """Returns the bytes of `path`, decompressed when they are a gzip stream."""
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except FileNotFoundError:
    raise DataError('%s: no such file' % path) from None
  except IsADirectoryError:
    raise DataError('%s: is a directory, expected an IDX file' % path) from None
  except OSError as e:
    raise DataError('%s: cannot read: %s' % (path, e.strerror or e)) from None
  if not data:
    raise DataError('%s: empty file (0 bytes), expected an IDX file' % path)
  if data[:2] == _GZIP_MAGIC:
    data = _gunzip(path, data)
  return data


def _gunzip(path, data):
  """Decompresses every gzip member of `data`; raises DataError if damaged."""
  # zlib directly is faster than the gzip module (no copying through a
  # buffered reader); with 16 + MAX_WBITS it parses the gzip header and
  # checks the CRC-32 and length of each member.
  chunks = []
  rest = data
  compressed_size = len(data)
  while rest:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
      chunks.append(decompressor.decompress(rest))
      chunks.append(decompressor.flush())
    except zlib.error as e:
      raise DataError('%s: broken gzip stream (%s)' % (path, e)) from None
    if not decompressor.eof:
      raise DataError(
          '%s: truncated gzip stream: the compressed data (%d bytes) ends '
          'before the end of the stream' % (path, compressed_size))
    rest = decompressor.unused_data
    # Like gzip(1), tolerate zero padding after the last member.
    if rest and rest[:2] != _GZIP_MAGIC:
      if rest.count(0) == len(rest):
        break
      raise DataError('%s: broken gzip stream: %d bytes of trailing garbage '
                      'after the compressed data' % (path, len(rest)))
  return chunks[0] if len(chunks) == 1 else b''.join(chunks)


def _parse_header(path, data):
  """Returns (dtype, item name, dims, header size) of IDX `data` from `path`."""
  if len(data) < 4:
    raise DataError(
        '%s: truncated header: an IDX file starts with a 4-byte magic number, '
        'file has %d bytes' % (path, len(data)))
  if data[0] != 0 or data[1] != 0:
    raise DataError(
        '%s: bad magic number 0x%s: an IDX file starts with two zero bytes, '
        'then the data type code and the number of dimensions (is this an '
        'IDX file?)' % (path, data[:4].hex().upper()))
  code, ndim = data[2], data[3]
  if code not in _IDX_DTYPES:
    raise DataError(
        '%s: bad data type code 0x%02X in the magic number 0x%s; expected one '
        'of %s' % (path, code, data[:4].hex().upper(), _describe_type_codes()))
  if ndim == 0:
    raise DataError('%s: bad magic number 0x%s: 0 dimensions, expected at '
                    'least 1' % (path, data[:4].hex().upper()))
  header_size = 4 + 4 * ndim
  if len(data) < header_size:
    raise DataError(
        '%s: truncated header: %d dimensions need a %d-byte header, file has '
        '%d bytes' % (path, ndim, header_size, len(data)))
  dims = tuple(int(d) for d in np.frombuffer(data, '>i4', ndim, offset=4))
  if any(d < 0 for d in dims):
    raise DataError('%s: bad header: negative dimension size in %s'
                    % (path, list(dims)))
  dtype, name = _IDX_DTYPES[code]
  return dtype, name, dims, header_size


def read_idx(path):
  """Reads an IDX file, raw or gzip-compressed.

  Args:
    path: path of the file (str or os.PathLike).

  Returns:
    A numpy array with the file's shape, in native byte order, with dtype
    uint8, int8, int16, int32, float32 or float64 as the header says. uint8
    and int8 arrays are read-only views of the file's bytes (copy them to
    modify them); the others are fresh arrays.

  Raises:
    DataError: the file is missing, empty, not an IDX file, has a broken
      gzip stream, or holds fewer or more data bytes than its header says.
  """
  path = os.fspath(path)
  data = _read_file(path)
  dtype, name, dims, header_size = _parse_header(path, data)
  count = 1
  for d in dims:
    count *= d
  expected = count * dtype.itemsize
  actual = len(data) - header_size
  if actual != expected:
    sizes = ' x '.join(str(d) for d in dims)
    if dtype.itemsize == 1:
      says = '%s = %d bytes of data' % (sizes, expected)
    else:
      says = '%s %s values = %d bytes of data' % (sizes, name, expected)
    if actual < expected:
      raise DataError('%s: truncated: header says %s, file has %d'
                      % (path, says, actual))
    raise DataError('%s: %d extra bytes after the data: header says %s, file '
                    'has %d' % (path, actual - expected, says, actual))
  array = np.frombuffer(data, dtype, count, offset=header_size).reshape(dims)
  if dtype.byteorder == '>':
    array = array.astype(dtype.newbyteorder('='))
  return array


def read_images(path):
  """Reads an IDX file of images.

  Args:
    path: path of an IDX file of uint8 data with 3 dimensions.

  Returns:
    uint8 array [num_images, height, width] (read-only).

  Raises:
    DataError: as `read_idx`, or the file is not uint8 with 3 dimensions.
  """
  array = read_idx(path)
  if array.ndim != 3:
    raise DataError(
        '%s: wrong number of dimensions: images need 3 [num_images, height, '
        'width], header has %d %s' % (path, array.ndim, list(array.shape)))
  if array.dtype != np.uint8:
    raise DataError('%s: wrong data type: images must be uint8 (type code '
                    '0x08), file holds %s' % (path, array.dtype.name))
  return array


def read_labels(path, num_classes=None):
  """Reads an IDX file of class labels.

  Args:
    path: path of an IDX file of integers with 1 dimension.
    num_classes: if given, every label must be in [0, num_classes).

  Returns:
    int64 array [num_labels].

  Raises:
    DataError: as `read_idx`, or the file is not 1-D integers, or a label is
      negative or (with `num_classes`) not below num_classes.
  """
  array = read_idx(path)
  if array.ndim != 1:
    raise DataError(
        '%s: wrong number of dimensions: labels need 1 [num_labels], header '
        'has %d %s' % (path, array.ndim, list(array.shape)))
  if array.dtype.kind not in 'iu':
    raise DataError('%s: wrong data type: labels must be integers, file holds '
                    '%s' % (path, array.dtype.name))
  labels = array.astype(np.int64)
  check_labels(labels, num_classes, path)
  return labels


def check_labels(labels, num_classes, source):
  """Raises DataError unless all `labels` are in [0, num_classes).

  Args:
    labels: integer array [num_labels].
    num_classes: exclusive upper bound, or None to check only for negatives.
    source: file or array name used in the error message.
  """
  if labels.size == 0:
    return
  bad = labels < 0
  if num_classes is not None:
    bad |= labels >= num_classes
  if bad.any():
    index = int(np.argmax(bad))
    expected = ('[0, %d)' % num_classes if num_classes is not None
                else 'non-negative')
    raise DataError('%s: label out of range: %d labels outside %s, the first '
                    'is %d at index %d' % (source, int(bad.sum()), expected,
                                           int(labels[index]), index))


@contextlib.contextmanager
def atomic_writer(path):
  """Opens a temporary file that replaces `path` only if the block succeeds.

  The temporary file lives next to `path` (so `os.replace` is atomic) and is
  deleted if the block raises; readers never see a half-written `path`.

  Args:
    path: final path of the file.

  Yields:
    A binary file object open for writing.
  """
  path = os.fspath(path)
  directory, base = os.path.split(path)
  tmp_path = os.path.join(directory, '.%s.tmp-%d-%s' % (
      base, os.getpid(), secrets.token_hex(4)))
  # os.open with 0o666 keeps the user's umask (mkstemp would force 0o600).
  fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, 'wb') as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp_path, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp_path)
    raise


def write_idx(path, array):
  """Writes `array` as an IDX file, gzip-compressed if `path` ends in `.gz`.

  The file is written to a temporary name and renamed into place.

  Args:
    path: destination path.
    array: array-like with at least 1 dimension and dtype uint8, int8, int16,
      int32, float32 or float64 (cast int64 labels to uint8 or int32 first).

  Raises:
    DataError: the dtype or shape cannot be stored in IDX, or the file
      cannot be written.
  """
  path = os.fspath(path)
  array = np.asarray(array)
  code = _TYPE_CODES.get(array.dtype.newbyteorder('='))
  if code is None:
    raise DataError('%s: cannot write dtype %s as IDX; expected one of %s'
                    % (path, array.dtype, _describe_type_codes()))
  if not 1 <= array.ndim <= 255:
    raise DataError('%s: cannot write an array with %d dimensions as IDX; '
                    'expected 1 to 255' % (path, array.ndim))
  if max(array.shape) > _MAX_DIM:
    raise DataError('%s: dimension sizes %s do not fit in int32'
                    % (path, list(array.shape)))
  header = bytes([0, 0, code, array.ndim]) + np.asarray(
      array.shape, '>i4').tobytes()
  payload = header + np.ascontiguousarray(
      array, _IDX_DTYPES[code][0]).tobytes()
  if path.endswith('.gz'):
    # mtime=0 makes the output depend on the data only.
    payload = gzip.compress(payload, mtime=0)
  try:
    with atomic_writer(path) as f:
      f.write(payload)
  except OSError as e:
    raise DataError('%s: cannot write: %s' % (path, e.strerror or e)) from None

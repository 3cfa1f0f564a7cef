"""Data sets by name: where their files are, how they are read and split.

`load_dataset(name)` returns a `DataSplits` of numpy arrays for

  fashion_mnist  Fashion-MNIST, 60,000 + 10,000 28x28 grayscale images
  mnist          MNIST digits, same layout
  npz:PATH       a user's .npz file holding x_train, y_train, x_test, y_test
                 (and optionally class_names)

The IDX data sets are looked for, in this order, in

  1. the `data_dir` argument (the folder itself or its `<name>` subfolder);
     if given, it must hold the data: nothing else is searched;
  2. `$DISTILL_V1_DATA` (the folder itself or its `<name>` subfolder);
  3. the Debian package folder (`apt-get install dataset-fashion-mnist`);
  4. the Keras cache (`~/.keras/datasets/`);
  5. this toolkit's download cache (`~/.cache/distill_v1/<name>/`);

and only if none holds them, downloaded into the download cache, each file
checked against its published MD5 checksum. A folder holds a data set when it
has all four IDX files, gzip-compressed or not, under the usual names
(`train-images-idx3-ubyte.gz`) or the ones some mirrors use
(`train-images.idx3-ubyte`); for mnist, a Keras `mnist.npz` also counts.

The folders and the download function are module attributes (`DEBIAN_DIRS`,
`KERAS_DIRS`, `CACHE_DIR`, `MIRRORS`, `fetch`) so tests and unusual
installations can change them.

This module uses numpy and the standard library only.
"""

import collections
import contextlib
import hashlib
import http.client
import logging
import os
import shutil
import urllib.request
import zipfile

import numpy as np

from distill_v1.data import idx
from distill_v1.errors import ConfigError
from distill_v1.errors import DataError

DataSplits = collections.namedtuple('DataSplits', [
    'name',                # the name given to load_dataset
    'train_images',        # float32 [num_train, H, W, C] in [0, 1]
    'train_labels',        # int64 [num_train]
    'validation_images',   # float32 [validation_size, H, W, C]
    'validation_labels',   # int64 [validation_size]
    'test_images',         # float32 [num_test, H, W, C] in [0, 1]
    'test_labels',         # int64 [num_test]
    'num_classes',         # int
    'class_names',         # tuple of num_classes str
    'image_shape',         # tuple (H, W, C)
])

FASHION_MNIST_CLASS_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress',
                             'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
                             'Ankle boot')
MNIST_CLASS_NAMES = tuple(str(i) for i in range(10))

NPZ_PREFIX = 'npz:'
ENV_VAR = 'DISTILL_V1_DATA'

# Where system packages put the data sets (Debian's dataset-fashion-mnist).
DEBIAN_DIRS = {
    'fashion_mnist': '/usr/share/datasets/fashion-mnist',
    'mnist': '/usr/share/datasets/mnist',
}
# Where keras.datasets caches them (KERAS_HOME moves ~/.keras).
_KERAS_HOME = os.environ.get('KERAS_HOME') or os.path.join('~', '.keras')
KERAS_DIRS = {
    'fashion_mnist': os.path.join(_KERAS_HOME, 'datasets', 'fashion-mnist'),
    'mnist': os.path.join(_KERAS_HOME, 'datasets'),
}
# Downloads go to CACHE_DIR/<name>/.
CACHE_DIR = os.path.join(
    os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache'),
    'distill_v1')

# Base URLs tried in order; each serves the four .gz files.
MIRRORS = {
    'fashion_mnist': (
        'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/'
        'master/data/fashion/',
        'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
    ),
    'mnist': (
        'https://ossci-datasets.s3.amazonaws.com/mnist/',
        'https://storage.googleapis.com/cvdf-datasets/mnist/',
        'http://yann.lecun.com/exdb/mnist/',
    ),
}
# Published MD5 checksums of the .gz files: Fashion-MNIST's from its README
# (github.com/zalandoresearch/fashion-mnist), MNIST's as torchvision checks
# them. Repackaged copies (e.g. Debian's) may be compressed differently; only
# downloads are checked.
CHECKSUMS = {
    'fashion_mnist': {
        'train-images-idx3-ubyte.gz':
            ('md5', '8d4fb7e6c68d591d4c3dfef9ec88bf0d'),
        'train-labels-idx1-ubyte.gz':
            ('md5', '25c81989df183df01b3e8a0aad5dffbe'),
        't10k-images-idx3-ubyte.gz':
            ('md5', 'bef4ecab320f06d8554ea6380940ec79'),
        't10k-labels-idx1-ubyte.gz':
            ('md5', 'bb300cfdad3c16e7a12a480ee83cd310'),
    },
    'mnist': {
        'train-images-idx3-ubyte.gz':
            ('md5', 'f68b3c2dcbeaaa9fbdd348bbdeb94873'),
        'train-labels-idx1-ubyte.gz':
            ('md5', 'd53e105ee54ea40749a09fcbcd1e9432'),
        't10k-images-idx3-ubyte.gz':
            ('md5', '9fb629c4189551a2d022fa330f9573f3'),
        't10k-labels-idx1-ubyte.gz':
            ('md5', 'ec29112dd5afa0611ce80d1b7f02629c'),
    },
}

_HOW_TO_GET = {
    'fashion_mnist': (
        '`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), '
        'or download the four .gz files from '
        'https://github.com/zalandoresearch/fashion-mnist into a folder and '
        'pass --data_dir=FOLDER (or set $%s=FOLDER)' % ENV_VAR),
    'mnist': (
        'download the four .gz files from one of %s into a folder '
        'and pass --data_dir=FOLDER (or set $%s=FOLDER), or put Keras\'s '
        'mnist.npz in that folder' % (', '.join(MIRRORS['mnist']), ENV_VAR)),
}

# Roles of the four IDX files and their canonical base names.
_IDX_FILES = (
    ('train_images', 'train-images-idx3-ubyte'),
    ('train_labels', 'train-labels-idx1-ubyte'),
    ('test_images', 't10k-images-idx3-ubyte'),
    ('test_labels', 't10k-labels-idx1-ubyte'),
)
# Other names a data set's folder may have inside DISTILL_V1_DATA/data_dir.
_SUBFOLDERS = {
    'fashion_mnist': ('fashion_mnist', 'fashion-mnist'),
    'mnist': ('mnist',),
}
_KERAS_NPZ = {'mnist': 'mnist.npz'}
_NPZ_KEYS = ('x_train', 'y_train', 'x_test', 'y_test')
_CHUNK_BYTES = 1 << 20

_logger = logging.getLogger(__name__)

# A file found by _locate: kind 'idx' (files = dict role -> path) or 'npz'
# (files = path of the npz file).
_Source = collections.namedtuple('_Source', ['kind', 'files'])


def dataset_names():
  """Returns the names of the built-in data sets (besides `npz:PATH`)."""
  return tuple(sorted(DEBIAN_DIRS))


def _urllib_fetch(url, out):
  """Writes the body of `url` to the binary file object `out`."""
  with urllib.request.urlopen(url, timeout=60) as response:
    shutil.copyfileobj(response, out, _CHUNK_BYTES)


# fetch(url, out) writes the resource at `url` to the binary file `out`,
# raising OSError (urllib.error.URLError is one) when it cannot.
fetch = _urllib_fetch


def _candidate_names(base):
  # 'train-images-idx3-ubyte' -> also 'train-images.idx3-ubyte' (Kaggle etc.).
  head, _, tail = base.rpartition('-idx')
  alternative = '%s.idx%s' % (head, tail)
  return (base + '.gz', base, alternative + '.gz', alternative)


def _find_idx_files(folder):
  """Returns (dict role -> path, list of missing base names) in `folder`."""
  found, missing = {}, []
  for role, base in _IDX_FILES:
    for candidate in _candidate_names(base):
      path = os.path.join(folder, candidate)
      if os.path.isfile(path):
        found[role] = path
        break
    else:
      missing.append(base + '[.gz]')
  return found, missing


def _look_in(name, folder, searched, label):
  """Returns the _Source in `folder` or None, noting why in `searched`."""
  if not os.path.isdir(folder):
    searched.append('%s %s: %s' % (label, folder, 'not a folder'
                                   if os.path.exists(folder) else
                                   'does not exist'))
    return None
  found, missing = _find_idx_files(folder)
  if not missing:
    return _Source('idx', found)
  npz_name = _KERAS_NPZ.get(name)
  if npz_name and os.path.isfile(os.path.join(folder, npz_name)):
    return _Source('npz', os.path.join(folder, npz_name))
  if found:
    searched.append('%s %s: incomplete, missing %s'
                    % (label, folder, ', '.join(missing)))
  else:
    searched.append('%s %s: no %s files' % (label, folder, name))
  return None


def _look_in_tree(name, folder, searched, label):
  """Looks in `folder`, then in its subfolders named after data set `name`."""
  source = _look_in(name, folder, searched, label)
  if source is None and os.path.isdir(folder):
    for subfolder in _SUBFOLDERS[name]:
      path = os.path.join(folder, subfolder)
      if os.path.isdir(path):
        source = _look_in(name, path, searched, label)
        if source is not None:
          break
  return source


def _hash_file_while_writing(out, algorithm):
  """Wraps binary file `out` so that what is written is also hashed."""

  class _HashingWriter(object):

    def __init__(self):
      self.digest = hashlib.new(algorithm)
      self.size = 0

    def write(self, data):
      self.digest.update(data)
      self.size += len(data)
      return out.write(data)

  return _HashingWriter()


def _download_file(url, path, algorithm, expected):
  """Downloads `url` to `path` atomically if its checksum is `expected`.

  Raises:
    DataError: checksum mismatch (the temporary file is deleted).
    OSError: the download or the write failed.
  """
  with idx.atomic_writer(path) as out:
    writer = _hash_file_while_writing(out, algorithm)
    fetch(url, writer)
    actual = writer.digest.hexdigest()
    if actual != expected:
      raise DataError(
          '%s: checksum mismatch: %s of the %d bytes downloaded is %s, the '
          'published %s is %s; the file was deleted'
          % (url, algorithm.upper(), writer.size, actual, algorithm.upper(),
             expected))


def _download(name, folder, errors):
  """Downloads the missing files of `name` into `folder`.

  Returns:
    The _Source, or None if a file could not be downloaded (reasons are
    appended to `errors`).
  """
  created = not os.path.isdir(folder)
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError as e:
    errors.append('cannot create %s: %s' % (folder, e.strerror or e))
    return None
  complete = True
  for filename, (algorithm, expected) in sorted(CHECKSUMS[name].items()):
    if not complete:
      break  # Offline or blocked: the other files would fail the same way.
    path = os.path.join(folder, filename)
    if os.path.isfile(path):
      continue  # Verified when it was downloaded.
    for base_url in MIRRORS[name]:
      url = base_url + filename
      _logger.info('Downloading %s to %s', url, path)
      try:
        _download_file(url, path, algorithm, expected)
        break
      except DataError as e:
        errors.append(str(e))
      except (OSError, ValueError, http.client.HTTPException) as e:
        # URLError and socket errors are OSErrors; HTTPException covers a
        # connection closed mid-body.
        errors.append('%s: %s' % (url, e))
    else:
      complete = False
  if not complete:
    if created:
      with contextlib.suppress(OSError):
        os.rmdir(folder)  # Only succeeds if nothing was downloaded.
    return None
  found, _ = _find_idx_files(folder)
  return _Source('idx', found)


def _expected_files(name):
  names = [base + '[.gz]' for _, base in _IDX_FILES]
  if name in _KERAS_NPZ:
    names.append('or ' + _KERAS_NPZ[name])
  return ', '.join(names)


def _locate(name, data_dir):
  """Finds (downloading if needed) the files of built-in data set `name`."""
  searched = []
  if data_dir:  # None or '' (an unset flag) searches the usual places.
    folder = os.path.expanduser(os.fspath(data_dir))
    source = _look_in_tree(name, folder, searched, 'data_dir')
    if source is None:
      raise DataError('%s not found in data_dir: %s. Expected %s. To get it: '
                      '%s' % (name, '; '.join(searched), _expected_files(name),
                              _HOW_TO_GET[name]))
    return source
  env_folder = os.environ.get(ENV_VAR)
  if env_folder:
    source = _look_in_tree(name, os.path.expanduser(env_folder), searched,
                           '$' + ENV_VAR)
    if source is not None:
      return source
  else:
    searched.append('$%s: not set' % ENV_VAR)
  cache_folder = os.path.join(os.path.expanduser(CACHE_DIR), name)
  for label, folder in (('Debian folder', DEBIAN_DIRS[name]),
                        ('Keras cache', KERAS_DIRS[name]),
                        ('download cache', cache_folder)):
    source = _look_in(name, os.path.expanduser(folder), searched, label)
    if source is not None:
      return source
  errors = []
  source = _download(name, cache_folder, errors)
  if source is not None:
    return source
  raise DataError('%s not found. Searched: %s. Expected %s. Download into %s '
                  'failed: %s. To get it: %s' % (
                      name, '; '.join(searched), _expected_files(name),
                      cache_folder, '; '.join(errors), _HOW_TO_GET[name]))


def _to_float_images(images):
  """Returns float32 [N, H, W, C] in [0, 1] from uint8 or float images.

  Args:
    images: uint8 (0-255) or float (already in [0, 1]) array [N, H, W] or
      [N, H, W, C].
  """
  if images.ndim == 3:
    images = images[..., np.newaxis]
  if images.dtype == np.uint8:
    # astype then an in-place divide is ~20x faster than np.divide with a
    # dtype argument, and as exact: float32(k) / 255 rounds k / 255 once.
    result = images.astype(np.float32)
    result /= np.float32(255)
    return result
  return images.astype(np.float32, copy=False)


def _read_npz(path):
  """Returns (dict of the four arrays, class names or None) from an npz."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      keys = set(npz.files)
      missing = [key for key in _NPZ_KEYS if key not in keys]
      if missing:
        raise DataError('%s: missing arrays %s; the file holds %s, expected '
                        '%s (and optionally class_names)'
                        % (path, missing, sorted(keys), list(_NPZ_KEYS)))
      arrays = {key: npz[key] for key in _NPZ_KEYS}
      class_names = npz['class_names'] if 'class_names' in keys else None
  except FileNotFoundError:
    raise DataError('%s: no such file' % path) from None
  except IsADirectoryError:
    raise DataError('%s: is a directory, expected an .npz file'
                    % path) from None
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    # ValueError covers object arrays, refused because loading them would
    # unpickle (run) arbitrary code.
    raise DataError('%s: cannot read as .npz (%s)' % (path, e)) from None
  return arrays, class_names


def _npz_class_names(class_names, path):
  if class_names is None:
    return None
  if class_names.ndim != 1 or class_names.dtype.kind not in 'US':
    raise DataError('%s: class_names must be a 1-D array of strings, got %s '
                    '%s' % (path, class_names.dtype, list(class_names.shape)))
  if class_names.dtype.kind == 'S':
    return tuple(name.decode('utf-8') for name in class_names)
  return tuple(str(name) for name in class_names)


def _check_npz_labels(labels, key, path):
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]  # Keras's CIFAR files store labels as [N, 1].
  if labels.ndim != 1 or labels.dtype.kind not in 'iu':
    raise DataError('%s: %s must be integer labels [N], got %s %s'
                    % (path, key, labels.dtype, list(labels.shape)))
  return labels.astype(np.int64)


def _load_npz(path, keras_digits=False):
  """Returns (train images, labels, test images, labels, class names)."""
  arrays, class_names = _read_npz(path)
  class_names = _npz_class_names(class_names, path)
  images = {}
  for key in ('x_train', 'x_test'):
    x = arrays[key]
    if x.ndim not in (3, 4):
      raise DataError('%s: %s must be images [N, H, W] or [N, H, W, C], got '
                      'shape %s' % (path, key, list(x.shape)))
    if x.dtype != np.uint8 and x.dtype.kind != 'f':
      raise DataError('%s: %s must be uint8 (0-255) or float (0-1), got %s'
                      % (path, key, x.dtype))
    if x.dtype.kind == 'f' and x.size:
      low, high = float(x.min()), float(x.max())
      if not 0.0 <= low <= high <= 1.0:  # Also false for NaN.
        raise DataError(
            '%s: %s holds float pixels in [%g, %g], expected [0, 1]; scale '
            'them or store uint8 pixels 0-255' % (path, key, low, high))
    images[key] = x
  labels = {key: _check_npz_labels(arrays[key], key, path)
            for key in ('y_train', 'y_test')}
  for split in ('train', 'test'):
    x, y = images['x_' + split], labels['y_' + split]
    if len(x) != len(y):
      raise DataError('%s: x_%s has %d images but y_%s has %d labels'
                      % (path, split, len(x), split, len(y)))
    if not len(x):
      raise DataError('%s: x_%s holds no examples' % (path, split))
  train_shape = images['x_train'].shape[1:]
  test_shape = images['x_test'].shape[1:]
  if train_shape != test_shape:
    raise DataError('%s: x_train images are %s but x_test images are %s'
                    % (path, list(train_shape), list(test_shape)))
  if keras_digits:
    class_names = MNIST_CLASS_NAMES
  if class_names is None:
    num_classes = int(max(labels['y_train'].max(), labels['y_test'].max())) + 1
    class_names = tuple(str(i) for i in range(max(num_classes, 1)))
  for key in ('y_train', 'y_test'):
    idx.check_labels(labels[key], len(class_names), '%s: %s' % (path, key))
  return (images['x_train'], labels['y_train'], images['x_test'],
          labels['y_test'], class_names)


def _load_idx(files, class_names):
  """Returns (train images, labels, test images, labels) from IDX files."""
  num_classes = len(class_names)
  train_images = idx.read_images(files['train_images'])
  train_labels = idx.read_labels(files['train_labels'], num_classes)
  test_images = idx.read_images(files['test_images'])
  test_labels = idx.read_labels(files['test_labels'], num_classes)
  for split, images, labels, images_path, labels_path in (
      ('train', train_images, train_labels, files['train_images'],
       files['train_labels']),
      ('test', test_images, test_labels, files['test_images'],
       files['test_labels'])):
    if len(images) != len(labels):
      raise DataError('%s has %d images but %s has %d labels'
                      % (images_path, len(images), labels_path, len(labels)))
    if not len(images):
      raise DataError('%s holds no images' % images_path)
  if train_images.shape[1:] != test_images.shape[1:]:
    raise DataError('%s images are %s but %s images are %s' % (
        files['train_images'], list(train_images.shape[1:]),
        files['test_images'], list(test_images.shape[1:])))
  return train_images, train_labels, test_images, test_labels


def _check_validation_size(validation_size, num_train):
  """Raises ConfigError unless 0 <= validation_size < num_train (if known)."""
  if isinstance(validation_size, bool) or not isinstance(
      validation_size, (int, np.integer)):
    raise ConfigError('validation_size must be an integer, got %r'
                      % (validation_size,))
  if validation_size < 0:
    raise ConfigError('validation_size %d is negative; expected 0 (no '
                      'validation split) or more' % validation_size)
  if num_train is not None and validation_size >= num_train:
    raise ConfigError(
        'validation_size %d is out of range: expected 0 <= validation_size < '
        '%d (the number of training examples)' % (validation_size, num_train))


def _split(images, labels, validation_size, seed):
  """Holds out `validation_size` examples chosen by a permutation from seed.

  Only which examples go where depends on the seed: both parts keep the
  examples in their original order.
  """
  if validation_size == 0:
    return images, labels, images[:0], labels[:0]
  permutation = np.random.RandomState(seed).permutation(len(images))
  validation = np.sort(permutation[:validation_size])
  train = np.sort(permutation[validation_size:])
  return images[train], labels[train], images[validation], labels[validation]


def load_dataset(name, data_dir=None, validation_size=0, seed=0):
  """Loads a data set into memory.

  Args:
    name: 'fashion_mnist', 'mnist' or 'npz:PATH'.
    data_dir: folder holding the IDX files (or a `<name>` subfolder holding
      them); None or '' searches the usual places (see the module
      docstring). Ignored for npz:PATH.
    validation_size: number of training examples held out as the validation
      split, chosen by a permutation seeded with `seed`; 0 for none.
    seed: seed of the validation permutation (np.random.RandomState), an
      integer in [0, 2**32).

  Returns:
    DataSplits: images float32 [N, H, W, C] in [0, 1] (C = 1 for grayscale),
    labels int64 [N] in [0, num_classes); the validation arrays have 0 rows
    when validation_size is 0.

  Raises:
    ConfigError: unknown name, or validation_size not in [0, num_train).
    DataError: the data are missing (the message lists where they were looked
      for and how to get them), damaged or inconsistent.
  """
  if not isinstance(name, str):
    raise ConfigError('dataset name must be a string, got %r' % (name,))
  _check_validation_size(validation_size, None)
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or (
      not 0 <= seed < 2**32):
    raise ConfigError('seed must be an integer in [0, 2**32), got %r'
                      % (seed,))
  if name.startswith(NPZ_PREFIX):
    path = os.path.expanduser(name[len(NPZ_PREFIX):])
    if not path:
      raise ConfigError('dataset %r: expected npz:PATH with the path of an '
                        '.npz file' % name)
    source = _Source('npz', path)
    class_names = None
  elif name in DEBIAN_DIRS:
    source = _locate(name, data_dir)
    class_names = (FASHION_MNIST_CLASS_NAMES if name == 'fashion_mnist'
                   else MNIST_CLASS_NAMES)
  else:
    raise ConfigError('unknown dataset %r; expected one of %s or npz:PATH'
                      % (name, ', '.join(dataset_names())))

  if source.kind == 'npz':
    (train_images, train_labels, test_images, test_labels,
     npz_class_names) = _load_npz(source.files,
                                  keras_digits=class_names is not None)
    class_names = npz_class_names
  else:
    train_images, train_labels, test_images, test_labels = _load_idx(
        source.files, class_names)
  _logger.info('Loaded %s from %s: %d train, %d test examples', name,
               source.files if source.kind == 'npz' else
               os.path.dirname(source.files['train_images']),
               len(train_images), len(test_images))

  _check_validation_size(validation_size, len(train_images))
  # Split before converting to float32: indexing uint8 moves 4x fewer bytes.
  train_images, train_labels, validation_images, validation_labels = _split(
      train_images, train_labels, validation_size, seed)
  train_images = _to_float_images(train_images)
  validation_images = _to_float_images(validation_images)
  test_images = _to_float_images(test_images)
  return DataSplits(
      name=name,
      train_images=train_images,
      train_labels=train_labels,
      validation_images=validation_images,
      validation_labels=validation_labels,
      test_images=test_images,
      test_labels=test_labels,
      num_classes=len(class_names),
      class_names=tuple(class_names),
      image_shape=tuple(int(d) for d in train_images.shape[1:]))

"""Tests of distill_v1.data.datasets: lookup order, npz, splits, downloads."""

import hashlib
import os
import re
import subprocess
import sys
import urllib.error

import numpy as np
import pytest

from distill_v1.data import datasets
from distill_v1.data import idx
from distill_v1.errors import ConfigError
from distill_v1.errors import DataError

_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
          't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')
_REAL_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'


def _offline_fetch(url, out):
  del out
  raise urllib.error.URLError('offline in tests (%s)' % url)


@pytest.fixture
def places(tmp_path, monkeypatch):
  """Points every searched folder at an empty tmp folder; no network."""
  folders = {key: str(tmp_path / key)
             for key in ('debian', 'keras', 'cache', 'env', 'data_dir')}
  monkeypatch.setattr(datasets, 'DEBIAN_DIRS', {
      'fashion_mnist': os.path.join(folders['debian'], 'fashion-mnist'),
      'mnist': os.path.join(folders['debian'], 'mnist')})
  monkeypatch.setattr(datasets, 'KERAS_DIRS', {
      'fashion_mnist': os.path.join(folders['keras'], 'fashion-mnist'),
      'mnist': folders['keras']})
  monkeypatch.setattr(datasets, 'CACHE_DIR', folders['cache'])
  monkeypatch.setattr(datasets, 'fetch', _offline_fetch)
  monkeypatch.delenv(datasets.ENV_VAR, raising=False)
  return folders


def _write_set(folder, marker=7, num_train=20, num_test=10, size=(4, 3),
               suffix='.gz', names=_FILES, labels_max=9):
  """Writes a 4-file IDX set whose pixels all equal `marker`."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.RandomState(marker)
  arrays = (
      np.full((num_train,) + size, marker, np.uint8),
      (np.arange(num_train) % (labels_max + 1)).astype(np.uint8),
      np.full((num_test,) + size, marker, np.uint8),
      rng.randint(0, labels_max + 1, num_test).astype(np.uint8),
  )
  for name, array in zip(names, arrays):
    idx.write_idx(os.path.join(folder, name + suffix), array)
  return arrays


def _marker(splits):
  return int(round(float(splits.train_images[0, 0, 0, 0]) * 255))


def test_dataset_names():
  assert datasets.dataset_names() == ('fashion_mnist', 'mnist')


def test_module_does_not_import_tensorflow():
  code = ('import sys, distill_v1.data.datasets; '
          'sys.exit("tensorflow" in sys.modules)')
  assert subprocess.run([sys.executable, '-c', code]).returncode == 0


def test_load_from_data_dir(places):
  arrays = _write_set(places['data_dir'], marker=51)
  splits = datasets.load_dataset('fashion_mnist', data_dir=places['data_dir'])
  assert splits.name == 'fashion_mnist'
  assert splits.train_images.shape == (20, 4, 3, 1)
  assert splits.train_images.dtype == np.float32
  np.testing.assert_array_equal(splits.train_images, np.float32(51) / 255)
  assert splits.train_labels.dtype == np.int64
  np.testing.assert_array_equal(splits.train_labels, arrays[1])
  np.testing.assert_array_equal(splits.test_labels, arrays[3])
  assert splits.test_images.shape == (10, 4, 3, 1)
  assert splits.validation_images.shape == (0, 4, 3, 1)
  assert splits.validation_images.dtype == np.float32
  assert splits.validation_labels.shape == (0,)
  assert splits.validation_labels.dtype == np.int64
  assert splits.num_classes == 10
  assert splits.class_names == datasets.FASHION_MNIST_CLASS_NAMES
  assert splits.class_names[0] == 'T-shirt/top'
  assert splits.class_names[9] == 'Ankle boot'
  assert splits.image_shape == (4, 3, 1)


def test_pixel_scaling_is_exact(places):
  folder = places['data_dir']
  os.makedirs(folder)
  images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
  for name, array in zip(_FILES, (images, np.zeros(1, np.uint8), images,
                                  np.zeros(1, np.uint8))):
    idx.write_idx(os.path.join(folder, name), array)
  splits = datasets.load_dataset('mnist', data_dir=folder)
  expected = np.arange(256, dtype=np.float64) / 255
  np.testing.assert_array_equal(splits.test_images.ravel(),
                                expected.astype(np.float32))
  assert splits.test_images.min() == 0.0 and splits.test_images.max() == 1.0
  assert splits.class_names == tuple('0123456789')


def test_location_order(places, monkeypatch):
  _write_set(places['data_dir'], marker=1)
  _write_set(places['env'], marker=2)
  _write_set(datasets.DEBIAN_DIRS['fashion_mnist'], marker=3)
  _write_set(datasets.KERAS_DIRS['fashion_mnist'], marker=4)
  _write_set(os.path.join(places['cache'], 'fashion_mnist'), marker=5)
  monkeypatch.setenv(datasets.ENV_VAR, places['env'])
  load = datasets.load_dataset
  assert _marker(load('fashion_mnist', data_dir=places['data_dir'])) == 1
  assert _marker(load('fashion_mnist')) == 2
  monkeypatch.delenv(datasets.ENV_VAR)
  assert _marker(load('fashion_mnist')) == 3
  monkeypatch.setattr(datasets, 'DEBIAN_DIRS', {'fashion_mnist': '/nowhere'})
  assert _marker(load('fashion_mnist')) == 4
  monkeypatch.setattr(datasets, 'KERAS_DIRS', {'fashion_mnist': '/nowhere'})
  assert _marker(load('fashion_mnist')) == 5


@pytest.mark.parametrize('subfolder', ['fashion_mnist', 'fashion-mnist'])
def test_env_var_folder_with_subfolder(places, monkeypatch, subfolder):
  _write_set(os.path.join(places['env'], subfolder), marker=9)
  _write_set(os.path.join(places['env'], 'mnist'), marker=10)
  monkeypatch.setenv(datasets.ENV_VAR, places['env'])
  assert _marker(datasets.load_dataset('fashion_mnist')) == 9
  assert _marker(datasets.load_dataset('mnist')) == 10


def test_env_var_without_the_data_falls_through(places, monkeypatch):
  os.makedirs(places['env'])
  monkeypatch.setenv(datasets.ENV_VAR, places['env'])
  _write_set(datasets.DEBIAN_DIRS['fashion_mnist'], marker=3)
  assert _marker(datasets.load_dataset('fashion_mnist')) == 3


def test_data_dir_subfolder(places):
  _write_set(os.path.join(places['data_dir'], 'mnist'), marker=12)
  assert _marker(datasets.load_dataset('mnist',
                                       data_dir=places['data_dir'])) == 12


def test_data_dir_without_the_data_is_an_error(places):
  # An explicit data_dir is never silently replaced by another copy.
  _write_set(datasets.DEBIAN_DIRS['fashion_mnist'], marker=3)
  _write_set(places['data_dir'], names=_FILES[:3])
  with pytest.raises(DataError) as info:
    datasets.load_dataset('fashion_mnist', data_dir=places['data_dir'])
  message = str(info.value)
  assert re.search(r'fashion_mnist not found in data_dir: data_dir .*'
                   r'data_dir: incomplete, missing '
                   r't10k-labels-idx1-ubyte\[\.gz\]', message), message
  assert 'apt-get install dataset-fashion-mnist' in message


def test_alternative_names_and_raw_files(places):
  names = ('train-images.idx3-ubyte', 'train-labels.idx1-ubyte',
           't10k-images.idx3-ubyte', 't10k-labels.idx1-ubyte')
  _write_set(places['data_dir'], marker=13, suffix='', names=names)
  assert _marker(datasets.load_dataset('mnist',
                                       data_dir=places['data_dir'])) == 13


def test_incomplete_folder_is_skipped(places):
  _write_set(datasets.DEBIAN_DIRS['fashion_mnist'], marker=3,
             names=_FILES[:2])
  _write_set(datasets.KERAS_DIRS['fashion_mnist'], marker=4)
  assert _marker(datasets.load_dataset('fashion_mnist')) == 4


def test_keras_mnist_npz(places):
  os.makedirs(places['keras'])
  x_train = np.full((6, 28, 28), 200, np.uint8)
  np.savez(os.path.join(places['keras'], 'mnist.npz'), x_train=x_train,
           y_train=np.arange(6, dtype=np.uint8), x_test=x_train[:2],
           y_test=np.array([9, 0], np.uint8))
  splits = datasets.load_dataset('mnist')
  assert splits.train_images.shape == (6, 28, 28, 1)
  np.testing.assert_allclose(splits.train_images, 200 / 255, rtol=1e-6)
  assert splits.num_classes == 10
  assert splits.class_names == tuple(str(i) for i in range(10))
  np.testing.assert_array_equal(splits.test_labels, [9, 0])


def test_labels_out_of_range_in_idx(places):
  _write_set(places['data_dir'], labels_max=10)
  with pytest.raises(DataError, match=r'train-labels-idx1-ubyte\.gz: label '
                     r'out of range: .* outside \[0, 10\)'):
    datasets.load_dataset('fashion_mnist', data_dir=places['data_dir'])


def test_idx_count_mismatch(places):
  _write_set(places['data_dir'])
  idx.write_idx(os.path.join(places['data_dir'],
                             'train-labels-idx1-ubyte.gz'),
                np.zeros(19, np.uint8))
  with pytest.raises(DataError, match=r'train-images-idx3-ubyte\.gz has 20 '
                     r'images but .*train-labels-idx1-ubyte\.gz has 19 labels'):
    datasets.load_dataset('fashion_mnist', data_dir=places['data_dir'])


def test_idx_image_size_mismatch(places):
  _write_set(places['data_dir'])
  idx.write_idx(os.path.join(places['data_dir'], 't10k-images-idx3-ubyte.gz'),
                np.zeros((10, 5, 5), np.uint8))
  with pytest.raises(DataError, match=r'images are \[4, 3\] but .*t10k-images'
                     r'-idx3-ubyte\.gz images are \[5, 5\]'):
    datasets.load_dataset('fashion_mnist', data_dir=places['data_dir'])


def test_nothing_found_offline_lists_every_place(places):
  with pytest.raises(DataError) as info:
    datasets.load_dataset('fashion_mnist')
  message = str(info.value)
  for expected in (
      r'^fashion_mnist not found\. Searched: ',
      r'\$DISTILL_V1_DATA: not set',
      r'Debian folder %s: does not exist' % re.escape(
          datasets.DEBIAN_DIRS['fashion_mnist']),
      r'Keras cache %s: does not exist' % re.escape(
          datasets.KERAS_DIRS['fashion_mnist']),
      r'download cache %s' % re.escape(
          os.path.join(places['cache'], 'fashion_mnist')),
      r'https://raw\.githubusercontent\.com/zalandoresearch/fashion-mnist/'
      r'master/data/fashion/t10k-images-idx3-ubyte\.gz: .*offline in tests',
      r'http://fashion-mnist\.s3-website\.eu-central-1\.amazonaws\.com/'
      r't10k-images-idx3-ubyte\.gz: .*offline in tests',
      r'apt-get install dataset-fashion-mnist',
      r'--data_dir',
  ):
    assert re.search(expected, message), (expected, message)
  assert '\n' not in message
  # After the first file fails everywhere the others are not tried.
  assert message.count('offline in tests') == 2
  # A failed download leaves no empty cache folder behind.
  assert not os.path.exists(os.path.join(places['cache'], 'fashion_mnist'))


def _make_mirror(folder, marker=21):
  """Writes a 4-file set as a mirror; returns its checksums table."""
  _write_set(folder, marker=marker)
  checksums = {}
  for name in _FILES:
    with open(os.path.join(folder, name + '.gz'), 'rb') as f:
      checksums[name + '.gz'] = ('md5', hashlib.md5(f.read()).hexdigest())
  return checksums


@pytest.fixture
def mirror(places, tmp_path, monkeypatch):
  """A file:// mirror of a small fashion_mnist; counts fetch calls."""
  checksums = _make_mirror(str(tmp_path / 'mirror'))
  monkeypatch.setattr(datasets, 'MIRRORS', {'fashion_mnist': (
      (tmp_path / 'missing_mirror').as_uri() + '/',
      (tmp_path / 'mirror').as_uri() + '/')})
  monkeypatch.setattr(datasets, 'CHECKSUMS', {'fashion_mnist': checksums})
  calls = []

  def counting_fetch(url, out):
    calls.append(url)
    return datasets._urllib_fetch(url, out)  # The real fetcher: file:// URLs.

  monkeypatch.setattr(datasets, 'fetch', counting_fetch)
  return calls


def test_download_success_and_cache_reuse(places, mirror):
  splits = datasets.load_dataset('fashion_mnist')
  assert _marker(splits) == 21
  cache = os.path.join(places['cache'], 'fashion_mnist')
  assert sorted(os.listdir(cache)) == sorted(name + '.gz' for name in _FILES)
  # Each file was first asked of the missing mirror, then of the good one.
  assert len(mirror) == 8
  assert all('missing_mirror' in url for url in mirror[0::2])
  del mirror[:]
  assert _marker(datasets.load_dataset('fashion_mnist')) == 21
  assert mirror == []  # Cached files are not downloaded again.
  os.remove(os.path.join(cache, 't10k-labels-idx1-ubyte.gz'))
  datasets.load_dataset('fashion_mnist')
  assert [os.path.basename(url) for url in mirror] == [
      't10k-labels-idx1-ubyte.gz'] * 2


def test_download_checksum_mismatch(places, mirror, monkeypatch):
  checksums = dict(datasets.CHECKSUMS['fashion_mnist'])
  checksums['train-images-idx3-ubyte.gz'] = ('md5', '0' * 32)
  monkeypatch.setattr(datasets, 'CHECKSUMS', {'fashion_mnist': checksums})
  with pytest.raises(DataError) as info:
    datasets.load_dataset('fashion_mnist')
  message = str(info.value)
  assert re.search(r'mirror/train-images-idx3-ubyte\.gz: checksum mismatch: '
                   r'MD5 of the \d+ bytes downloaded is [0-9a-f]{32}, the '
                   r'published MD5 is 0{32}; the file was deleted',
                   message), message
  cache = os.path.join(places['cache'], 'fashion_mnist')
  # The bad file and its temporary are gone; the good ones fetched before it
  # (in sorted order) stay cached, the one after it was not tried.
  assert sorted(os.listdir(cache)) == [
      't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']


def test_default_checksums_are_the_published_ones():
  fashion = datasets.CHECKSUMS['fashion_mnist']
  assert fashion['train-images-idx3-ubyte.gz'] == (
      'md5', '8d4fb7e6c68d591d4c3dfef9ec88bf0d')
  assert fashion['t10k-labels-idx1-ubyte.gz'] == (
      'md5', 'bb300cfdad3c16e7a12a480ee83cd310')
  assert datasets.CHECKSUMS['mnist']['train-images-idx3-ubyte.gz'] == (
      'md5', 'f68b3c2dcbeaaa9fbdd348bbdeb94873')
  for name in ('fashion_mnist', 'mnist'):
    assert sorted(datasets.CHECKSUMS[name]) == sorted(f + '.gz' for f in _FILES)


# --- npz:PATH -------------------------------------------------------------


def _save_npz(path, **arrays):
  np.savez(str(path), **arrays)
  return 'npz:' + str(path)


def test_npz_uint8_3d(tmp_path):
  x_train = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3)
  name = _save_npz(tmp_path / 'd.npz', x_train=x_train,
                   y_train=np.array([0, 1, 2, 3, 4], np.int32),
                   x_test=x_train[:2], y_test=np.array([6, 0], np.int64))
  splits = datasets.load_dataset(name)
  assert splits.name == name
  assert splits.train_images.shape == (5, 2, 3, 1)
  np.testing.assert_array_equal(splits.train_images[..., 0],
                                x_train.astype(np.float32) / 255)
  assert splits.num_classes == 7  # max label (6, in y_test) + 1
  assert splits.class_names == ('0', '1', '2', '3', '4', '5', '6')
  assert splits.image_shape == (2, 3, 1)
  assert splits.train_labels.dtype == np.int64


def test_npz_float_4d_with_class_names(tmp_path):
  rng = np.random.RandomState(0)
  x_train = rng.uniform(0, 1, (4, 3, 3, 3))
  name = _save_npz(tmp_path / 'd.npz', x_train=x_train,
                   y_train=np.array([[0], [1], [0], [1]], np.uint8),
                   x_test=x_train[:1].astype(np.float32),
                   y_test=np.array([1], np.uint8),
                   class_names=np.array(['cat', 'dog', 'bird']))
  splits = datasets.load_dataset(name)
  assert splits.train_images.dtype == np.float32
  assert splits.image_shape == (3, 3, 3)
  np.testing.assert_allclose(splits.train_images, x_train, rtol=1e-6)
  np.testing.assert_array_equal(splits.train_labels, [0, 1, 0, 1])
  assert splits.num_classes == 3
  assert splits.class_names == ('cat', 'dog', 'bird')


def _npz_case(**changes):
  arrays = dict(x_train=np.zeros((4, 2, 2), np.uint8),
                y_train=np.array([0, 1, 2, 1], np.uint8),
                x_test=np.zeros((2, 2, 2), np.uint8),
                y_test=np.array([0, 2], np.uint8))
  arrays.update(changes)
  return {key: value for key, value in arrays.items() if value is not None}


_BAD_NPZ = [
    ('float_above_one', _npz_case(x_train=np.full((4, 2, 2), 2.0)),
     r'x_train holds float pixels in \[2, 2\], expected \[0, 1\]'),
    ('float_nan', _npz_case(x_test=np.full((2, 2, 2), np.nan, np.float32)),
     r'x_test holds float pixels in \[nan, nan\], expected \[0, 1\]'),
    ('int_images', _npz_case(x_train=np.zeros((4, 2, 2), np.int32)),
     r'x_train must be uint8 \(0-255\) or float \(0-1\), got int32'),
    ('count_mismatch', _npz_case(y_train=np.array([0, 1, 2], np.uint8)),
     r'x_train has 4 images but y_train has 3 labels'),
    ('shape_mismatch', _npz_case(x_test=np.zeros((2, 3, 2), np.uint8)),
     r'x_train images are \[2, 2\] but x_test images are \[3, 2\]'),
    ('channels_mismatch', _npz_case(x_test=np.zeros((2, 2, 2, 3), np.uint8)),
     r'x_train images are \[2, 2\] but x_test images are \[2, 2, 3\]'),
    ('two_dims', _npz_case(x_train=np.zeros((4, 4), np.uint8)),
     r'x_train must be images \[N, H, W\] or \[N, H, W, C\], got shape '
     r'\[4, 4\]'),
    ('float_labels', _npz_case(y_test=np.array([0.0, 1.0])),
     r'y_test must be integer labels \[N\], got float64 \[2\]'),
    ('negative_labels', _npz_case(y_test=np.array([0, -3], np.int64)),
     r'y_test: label out of range: 1 labels outside \[0, 3\), the first is -3'),
    ('labels_beyond_class_names',
     _npz_case(class_names=np.array(['a', 'b'])),
     r'y_train: label out of range: 1 labels outside \[0, 2\)'),
    ('missing_key', _npz_case(y_test=None),
     r"missing arrays \['y_test'\]"),
    ('empty_test', _npz_case(x_test=np.zeros((0, 2, 2), np.uint8),
                             y_test=np.zeros(0, np.uint8)),
     r'x_test holds no examples'),
]


@pytest.mark.parametrize('case,arrays,message', _BAD_NPZ,
                         ids=[case[0] for case in _BAD_NPZ])
def test_npz_errors(tmp_path, case, arrays, message):
  name = _save_npz(tmp_path / (case + '.npz'), **arrays)
  with pytest.raises(DataError) as info:
    datasets.load_dataset(name)
  text = str(info.value)
  assert text.startswith(str(tmp_path / (case + '.npz')) + ': '), text
  assert re.search(message, text), text


def test_npz_object_array_is_refused(tmp_path):
  arrays = _npz_case(class_names=np.array(['a', None, 'c'], object))
  name = _save_npz(tmp_path / 'pickled.npz', **arrays)
  with pytest.raises(DataError, match=r'pickled\.npz: cannot read as \.npz'):
    datasets.load_dataset(name)


def test_npz_missing_and_not_a_zip(tmp_path):
  with pytest.raises(DataError, match=r'nope\.npz: no such file'):
    datasets.load_dataset('npz:' + str(tmp_path / 'nope.npz'))
  (tmp_path / 'text.npz').write_text('hello')
  with pytest.raises(DataError, match=r'text\.npz: cannot read as \.npz'):
    datasets.load_dataset('npz:' + str(tmp_path / 'text.npz'))


# --- validation split and names ------------------------------------------


def _indexed_npz(tmp_path, count=300):
  # Pixel (0, 0) and (0, 1) spell each example's index, so the tests can
  # tell which examples went where.
  x = np.zeros((count, 2, 2), np.uint8)
  x[:, 0, 0] = np.arange(count) // 256
  x[:, 0, 1] = np.arange(count) % 256
  return _save_npz(tmp_path / 'indexed.npz', x_train=x,
                   y_train=(np.arange(count) % 10).astype(np.uint8),
                   x_test=x[:3], y_test=np.zeros(3, np.uint8))


def _ids(images):
  pixels = np.round(images[:, 0, :2, 0] * 255).astype(np.int64)
  return pixels[:, 0] * 256 + pixels[:, 1]


def test_validation_split(tmp_path):
  name = _indexed_npz(tmp_path)
  splits = datasets.load_dataset(name, validation_size=50, seed=3)
  assert splits.validation_images.shape == (50, 2, 2, 1)
  assert splits.validation_labels.shape == (50,)
  assert splits.train_images.shape == (250, 2, 2, 1)
  train_ids, validation_ids = _ids(splits.train_images), _ids(
      splits.validation_images)
  assert not set(train_ids) & set(validation_ids)
  np.testing.assert_array_equal(
      np.sort(np.concatenate([train_ids, validation_ids])), np.arange(300))
  # Labels travel with their images; both parts keep the original order.
  np.testing.assert_array_equal(splits.train_labels, train_ids % 10)
  np.testing.assert_array_equal(splits.validation_labels, validation_ids % 10)
  assert np.all(np.diff(train_ids) > 0)
  # The held-out examples are the first 50 of the seeded permutation.
  np.testing.assert_array_equal(
      validation_ids, np.sort(np.random.RandomState(3).permutation(300)[:50]))

  again = datasets.load_dataset(name, validation_size=50, seed=3)
  np.testing.assert_array_equal(_ids(again.validation_images), validation_ids)
  other = datasets.load_dataset(name, validation_size=50, seed=4)
  assert not np.array_equal(_ids(other.validation_images), validation_ids)
  assert splits.test_images.shape == (3, 2, 2, 1)


@pytest.mark.parametrize('size,message', [
    (-1, r'validation_size -1 is negative'),
    (300, r'validation_size 300 is out of range: expected 0 <= '
          r'validation_size < 300'),
    (1000, r'validation_size 1000 is out of range'),
    (2.5, r'validation_size must be an integer, got 2\.5'),
    (True, r'validation_size must be an integer, got True'),
])
def test_validation_size_errors(tmp_path, size, message):
  name = _indexed_npz(tmp_path)
  with pytest.raises(ConfigError, match=message):
    datasets.load_dataset(name, validation_size=size)


@pytest.mark.parametrize('seed', [-1, 2**32, 1.5, None])
def test_bad_seed(tmp_path, seed):
  with pytest.raises(ConfigError, match=r'seed must be an integer in '
                     r'\[0, 2\*\*32\), got %s' % re.escape(repr(seed))):
    datasets.load_dataset(_indexed_npz(tmp_path), validation_size=5,
                          seed=seed)


def test_empty_data_dir_means_unset(places):
  _write_set(datasets.DEBIAN_DIRS['fashion_mnist'], marker=3)
  assert _marker(datasets.load_dataset('fashion_mnist', data_dir='')) == 3


def test_largest_validation_size(tmp_path):
  splits = datasets.load_dataset(_indexed_npz(tmp_path), validation_size=299)
  assert len(splits.train_images) == 1 and len(splits.validation_images) == 299


def test_unknown_name():
  with pytest.raises(ConfigError, match=r"unknown dataset 'cifar10'; expected "
                     r'one of fashion_mnist, mnist or npz:PATH'):
    datasets.load_dataset('cifar10')
  with pytest.raises(ConfigError, match=r'npz:PATH'):
    datasets.load_dataset('npz:')


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(_REAL_FASHION_MNIST,
                                    'train-images-idx3-ubyte.gz')),
    reason='Fashion-MNIST is not installed (apt-get install '
    'dataset-fashion-mnist)')
def test_real_fashion_mnist():
  splits = datasets.load_dataset('fashion_mnist',
                                 data_dir=_REAL_FASHION_MNIST)
  assert splits.train_images.shape == (60000, 28, 28, 1)
  assert splits.test_images.shape == (10000, 28, 28, 1)
  assert splits.train_images.dtype == np.float32
  assert splits.test_labels.dtype == np.int64
  for images in (splits.train_images, splits.test_images):
    assert images.min() == 0.0 and images.max() == 1.0
  np.testing.assert_array_equal(np.bincount(splits.train_labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(splits.test_labels), [1000] * 10)
  assert splits.image_shape == (28, 28, 1)
  assert splits.num_classes == 10

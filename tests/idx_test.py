"""Tests of distill_v1.data.idx: round trips and every kind of broken file."""

import gzip
import os
import re
import struct

import numpy as np
import pytest

from distill_v1.data import idx
from distill_v1.errors import DataError


def _header(code, dims):
  return bytes([0, 0, code, len(dims)]) + struct.pack('>%di' % len(dims), *dims)


def _write_bytes(path, data):
  with open(path, 'wb') as f:
    f.write(data)
  return str(path)


@pytest.mark.parametrize('dtype', ['uint8', 'int8', 'int16', 'int32',
                                   'float32', 'float64'])
@pytest.mark.parametrize('suffix', ['', '.gz'])
def test_write_read_round_trip(tmp_path, dtype, suffix):
  rng = np.random.RandomState(0)
  array = (rng.uniform(-100, 100, size=(3, 4, 5))
           if dtype.startswith('float') else
           rng.randint(np.iinfo(dtype).min, np.iinfo(dtype).max, (3, 4, 5)))
  array = array.astype(dtype)
  path = str(tmp_path / ('a.idx' + suffix))
  idx.write_idx(path, array)
  result = idx.read_idx(path)
  assert result.dtype == np.dtype(dtype)
  assert result.dtype.isnative
  np.testing.assert_array_equal(result, array)


def test_bytes_on_disk_follow_the_format(tmp_path):
  path = str(tmp_path / 'labels-idx1-ubyte')
  idx.write_idx(path, np.array([1, 256, -2], np.int32))
  with open(path, 'rb') as f:
    data = f.read()
  assert data == (b'\x00\x00\x0c\x01' + b'\x00\x00\x00\x03' +
                  b'\x00\x00\x00\x01\x00\x00\x01\x00\xff\xff\xff\xfe')


def test_gz_path_is_compressed_and_deterministic(tmp_path):
  array = np.arange(100, dtype=np.uint8).reshape(4, 5, 5)
  first, second = str(tmp_path / 'a.gz'), str(tmp_path / 'b.gz')
  idx.write_idx(first, array)
  idx.write_idx(second, array)
  with open(first, 'rb') as f:
    data = f.read()
  assert data[:2] == b'\x1f\x8b'
  assert gzip.decompress(data)[:4] == b'\x00\x00\x08\x03'
  with open(second, 'rb') as f:
    assert f.read() == data


def test_read_detects_gzip_by_content_not_name(tmp_path):
  array = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
  raw = str(tmp_path / 'raw')
  idx.write_idx(raw, array)
  misnamed = str(tmp_path / 'decompressed-by-browser.gz')
  os.rename(raw, misnamed)
  np.testing.assert_array_equal(idx.read_images(misnamed), array)


def test_read_multi_member_gzip(tmp_path):
  data = _header(0x08, [4]) + bytes([1, 2, 3, 4])
  path = _write_bytes(tmp_path / 'x.gz',
                      gzip.compress(data[:6]) + gzip.compress(data[6:]))
  np.testing.assert_array_equal(idx.read_idx(path), [1, 2, 3, 4])


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
  path = str(tmp_path / 'a-idx1-ubyte')
  idx.write_idx(path, np.zeros(3, np.uint8))
  idx.write_idx(path, np.ones(5, np.uint8))
  np.testing.assert_array_equal(idx.read_idx(path), np.ones(5))
  assert os.listdir(str(tmp_path)) == ['a-idx1-ubyte']


def test_atomic_writer_removes_temp_file_on_error(tmp_path):
  path = str(tmp_path / 'out')
  with pytest.raises(RuntimeError):
    with idx.atomic_writer(path) as f:
      f.write(b'half')
      raise RuntimeError('interrupted')
  assert os.listdir(str(tmp_path)) == []


def test_write_rejects_unsupported_dtype(tmp_path):
  with pytest.raises(DataError, match=r'labels\.gz: cannot write dtype int64'):
    idx.write_idx(str(tmp_path / 'labels.gz'), np.zeros(3, np.int64))
  with pytest.raises(DataError, match=r'0 dimensions'):
    idx.write_idx(str(tmp_path / 'scalar'), np.uint8(3))
  assert os.listdir(str(tmp_path)) == []


def test_write_into_missing_folder(tmp_path):
  path = str(tmp_path / 'no' / 'such' / 'a.gz')
  with pytest.raises(DataError, match=re.escape(path) + r': cannot write: '):
    idx.write_idx(path, np.zeros(3, np.uint8))


def test_read_images_and_labels(tmp_path):
  images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  idx.write_idx(str(tmp_path / 'images.gz'), images)
  idx.write_idx(str(tmp_path / 'labels.gz'), np.array([9, 0], np.uint8))
  result = idx.read_images(str(tmp_path / 'images.gz'))
  assert result.dtype == np.uint8 and result.shape == (2, 3, 4)
  np.testing.assert_array_equal(result, images)
  labels = idx.read_labels(tmp_path / 'labels.gz', num_classes=10)
  assert labels.dtype == np.int64
  np.testing.assert_array_equal(labels, [9, 0])


# Each broken file: (name, bytes, regex the message must match after the
# file name).
_HEADER_3D = _header(0x08, [2, 3, 4])
_GZ_3D = gzip.compress(_HEADER_3D + bytes(range(24)), mtime=0)
_BROKEN = [
    ('bad_magic', b'\x1f\x00\x08\x03' + _HEADER_3D[4:] + bytes(24),
     r'bad magic number 0x1F000803'),
    ('bad_magic_text', b'<html>not found</html>', r'bad magic number'),
    ('bad_dtype', b'\x00\x00\x0a\x03' + _HEADER_3D[4:] + bytes(24),
     r'bad data type code 0x0A.*expected one of 0x08 \(uint8\)'),
    ('zero_dims', b'\x00\x00\x08\x00', r'0 dimensions'),
    ('negative_dim', _header(0x08, [-1, 2, 2]),
     r'bad header: negative dimension size in \[-1, 2, 2\]'),
    ('truncated_data', _HEADER_3D + bytes(10),
     r'truncated: header says 2 x 3 x 4 = 24 bytes of data, file has 10$'),
    ('truncated_int32_data', _header(0x0C, [5]) + bytes(8),
     r'truncated: header says 5 int32 values = 20 bytes of data, file has 8'),
    ('truncated_header', _HEADER_3D[:10],
     r'truncated header: 3 dimensions need a 16-byte header, file has 10 '
     r'bytes'),
    ('truncated_magic', b'\x00\x00', r'truncated header: .* file has 2 bytes'),
    ('extra_bytes', _HEADER_3D + bytes(30),
     r'6 extra bytes after the data: header says 2 x 3 x 4 = 24 bytes of '
     r'data, file has 30'),
    ('empty', b'', r'empty file \(0 bytes\)'),
    ('broken_gzip_crc', _GZ_3D[:-8] + bytes([_GZ_3D[-8] ^ 1]) + _GZ_3D[-7:],
     r'broken gzip stream \(.*incorrect data check'),
    ('broken_gzip_deflate', _GZ_3D[:10] + b'\xff' * 20 + _GZ_3D[-8:],
     r'broken gzip stream \(.*invalid block type'),
    ('truncated_gzip', gzip.compress(_HEADER_3D + bytes(range(24)))[:20],
     r'truncated gzip stream'),
    ('gzip_trailing_garbage', gzip.compress(_HEADER_3D + bytes(24)) + b'junk',
     r'broken gzip stream: 4 bytes of trailing garbage'),
]


@pytest.mark.parametrize('name,data,message', _BROKEN,
                         ids=[case[0] for case in _BROKEN])
def test_broken_file_raises_one_data_error(tmp_path, name, data, message):
  path = _write_bytes(tmp_path / (name + '-idx3-ubyte'), data)
  with pytest.raises(DataError) as info:
    idx.read_images(path)
  text = str(info.value)
  assert text.startswith(path + ': '), text
  assert re.search(message, text), text


def test_gzip_zero_padding_is_accepted(tmp_path):
  data = gzip.compress(_HEADER_3D + bytes(24)) + bytes(512)
  path = _write_bytes(tmp_path / 'padded.gz', data)
  assert idx.read_images(path).shape == (2, 3, 4)


def test_missing_file(tmp_path):
  path = str(tmp_path / 'nope-idx3-ubyte.gz')
  with pytest.raises(DataError, match=re.escape(path) + r': no such file'):
    idx.read_idx(path)


def test_directory_instead_of_file(tmp_path):
  with pytest.raises(DataError, match=r': is a directory'):
    idx.read_idx(str(tmp_path))


def test_images_need_three_dims(tmp_path):
  path = str(tmp_path / 'labels-idx1-ubyte')
  idx.write_idx(path, np.zeros(7, np.uint8))
  with pytest.raises(DataError,
                     match=r'labels-idx1-ubyte: wrong number of dimensions: '
                     r'images need 3 .*header has 1 \[7\]'):
    idx.read_images(path)


def test_images_need_uint8(tmp_path):
  path = str(tmp_path / 'images')
  idx.write_idx(path, np.zeros((1, 2, 2), np.float32))
  with pytest.raises(DataError, match=r'images: wrong data type: .*float32'):
    idx.read_images(path)


def test_labels_need_one_dim(tmp_path):
  path = str(tmp_path / 'images-idx3-ubyte.gz')
  idx.write_idx(path, np.zeros((2, 2, 2), np.uint8))
  with pytest.raises(DataError,
                     match=r'images-idx3-ubyte\.gz: wrong number of '
                     r'dimensions: labels need 1 .*header has 3 \[2, 2, 2\]'):
    idx.read_labels(path)


def test_labels_need_integers(tmp_path):
  path = str(tmp_path / 'labels')
  idx.write_idx(path, np.zeros(3, np.float64))
  with pytest.raises(DataError, match=r'labels: wrong data type: .*float64'):
    idx.read_labels(path)


def test_labels_out_of_range(tmp_path):
  path = str(tmp_path / 'train-labels-idx1-ubyte.gz')
  idx.write_idx(path, np.array([0, 3, 10, 12, 9], np.uint8))
  np.testing.assert_array_equal(idx.read_labels(path), [0, 3, 10, 12, 9])
  with pytest.raises(DataError,
                     match=r'train-labels-idx1-ubyte\.gz: label out of range: '
                     r'2 labels outside \[0, 10\), the first is 10 at index 2'):
    idx.read_labels(path, num_classes=10)


def test_negative_labels(tmp_path):
  path = str(tmp_path / 'labels')
  idx.write_idx(path, np.array([0, -1], np.int8))
  with pytest.raises(DataError, match=r'labels: label out of range: .*'
                     r'non-negative, the first is -1 at index 1'):
    idx.read_labels(path)

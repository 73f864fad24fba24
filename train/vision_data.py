"""Images (any IDX or NPZ folder), CIFAR-10/100 (the python or binary batches) and event-camera data
(N-MNIST, DVS-CIFAR10) from disk.

Nothing is downloaded: every loader takes a local path and raises :class:`EslError` naming the first
missing file or folder, or the first damaged one.

- Images (``data.dataset: images``, :func:`load_images`): the IDX or ``train.npz``/``test.npz`` folders
  :func:`esl_hw.datasets.load_dataset` reads (Fashion-MNIST, MNIST, KMNIST, …), checked there (at most
  ``MAX_INPUTS_PER_LAYER`` values per image, 2 or more classes); each image ``[H, W]`` (one channel) or
  channels-last ``[H, W, C]`` with ``C <= 4``, any other shape refused. Returned ``[N, C, H, W]`` uint8;
  the class count is the largest label plus one, as for the MLP.
- CIFAR-10: ``<path>/data_batch_1 … data_batch_5`` and ``test_batch`` (the ``cifar-10-batches-py``
  folder, or its parent), pickled dicts with ``b"data"`` ``[N, 3072]`` uint8 (channel-major 32×32) and
  ``b"labels"``; or ``data_batch_<i>.bin`` and ``test_batch.bin`` (``cifar-10-batches-bin``), records
  of 1 label byte and 3072 pixel bytes.
- CIFAR-100: ``<path>/train`` and ``test`` (``cifar-100-python``), ``b"data"`` and ``b"fine_labels"``;
  or ``train.bin`` and ``test.bin`` (``cifar-100-binary``), records of a coarse and a fine label byte
  and 3072 pixel bytes.

The python batches are read with :class:`CifarUnpickler`, which builds dicts, bytes, lists, numbers
and numpy arrays and refuses any other global: a crafted batch file cannot run code. Pixels must be
integers 0..255 and labels integers in the class range, one per image.
- N-MNIST: ``<path>/Train/<digit>/*.bin`` and ``Test/…`` (tonic's layout), read with
  ``tonic.io.read_mnist_file``; sensor 34×34×2.
- DVS-CIFAR10: ``<path>/<class name>/*.aedat4`` (tonic's layout), read with ``tonic.io.read_aedat4``
  (needs the ``aedat`` package); sensor 128×128×2. It has no official split: the first
  ``round(0.9 · n)`` recordings of each class (sorted by name) train, the rest test.

Event recordings become frames ``[T, 2, H, W]`` with ``tonic.transforms.ToFrame(n_time_bins=T)``:
the recording is cut into ``T`` equal time bins and each frame counts the events per polarity and
pixel (tonic leaves out the events at the recording's very last time stamp).
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esl_hw.datasets import as_pixels, check_labels, load_dataset
from esl_hw.errors import EslError

try:
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

CIFAR10_DVS_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NMNIST_SENSOR = (34, 34, 2)
CIFAR10_DVS_SENSOR = (128, 128, 2)
CIFAR_PIXELS = 3 * 32 * 32
#: The most channels of a channels-last image ``[H, W, C]`` (grey, grey+alpha, RGB, RGBA).
MAX_IMAGE_CHANNELS = 4
CIFAR_MAX_BYTES = 1 << 30  # one batch file; CIFAR-100's train file, the largest, is 155 MB
# the python batches' globals: numpy rebuilds its arrays, dtypes (and scalars) from these
CIFAR_GLOBALS = {
    (module, name): getattr(_multiarray, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


@dataclass(frozen=True)
class ArraySplit:
    """``inputs`` (images ``[N, C, H, W]`` uint8, or frames ``[N, T, 2, H, W]``) and ``labels`` ``[N]``."""

    inputs: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def image_layout(shape: tuple[int, ...], source: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of one image of ``shape``: ``[H, W]`` is one channel, ``[H, W, C]`` with ``C <=``
    :data:`MAX_IMAGE_CHANNELS` channels last; any other shape is an :class:`EslError` naming it."""
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    if len(shape) == 3 and shape[2] <= MAX_IMAGE_CHANNELS:
        return shape[2], shape[0], shape[1]
    raise EslError(
        f"dataset {source}: images of shape {'x'.join(map(str, shape))} are neither [H, W] nor "
        f"channels-last [H, W, C] with C <= {MAX_IMAGE_CHANNELS}"
    )


def load_images(path: str | os.PathLike[str]) -> tuple[ArraySplit, ArraySplit, int]:
    """``(train, test, classes)`` of the IDX or NPZ image folder ``path``: images ``[N, C, H, W]`` uint8
    (:func:`image_layout`), labels ``[N]`` int64, classes the largest label plus one."""
    dataset = load_dataset(path)
    channels, height, width = image_layout(dataset.image_shape, dataset.source)

    def split(images: np.ndarray, labels: np.ndarray) -> ArraySplit:
        layered = images.reshape(len(images), height, width, channels).transpose(0, 3, 1, 2)
        return ArraySplit(np.ascontiguousarray(layered), labels)

    train, test = dataset.train, dataset.test
    return split(train.images, train.labels), split(test.images, test.labels), dataset.classes


def _folder(path: str | os.PathLike[str], *candidates: str) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise EslError(f"dataset path {root} is not a folder")
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    return root


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a CIFAR python batch holds: dicts, bytes, lists, numbers
    and numpy arrays (:data:`CIFAR_GLOBALS`); any other global is refused, nothing else is run."""

    def __init__(self, handle: Any, path: Path) -> None:
        super().__init__(handle, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in CIFAR_GLOBALS:
            raise EslError(
                f"{self.path}: refused to unpickle {module}.{name} (only CIFAR batch contents are read)"
            )
        return CIFAR_GLOBALS[(module, name)]


def _read_file(path: Path, what: str) -> bytes:
    """The bytes of ``path`` (at most :data:`CIFAR_MAX_BYTES`)."""
    if not path.is_file():
        raise EslError(f"dataset file {path} is missing")
    try:
        with path.open("rb") as handle:
            raw = handle.read(CIFAR_MAX_BYTES + 1)
    except OSError as error:
        raise EslError(f"{path}: cannot read {what} ({error})") from None
    if len(raw) > CIFAR_MAX_BYTES:
        raise EslError(f"{path}: larger than {CIFAR_MAX_BYTES} bytes, not a {what}")
    return raw


def _unpickle(path: Path) -> dict:
    raw = _read_file(path, "CIFAR python batch")
    try:
        batch = CifarUnpickler(io.BytesIO(raw), path).load()
    except EslError:
        raise
    except Exception as error:  # whatever a damaged pickle makes the unpickler raise
        raise EslError(f"{path}: not a CIFAR python batch ({type(error).__name__}: {error})") from None
    if not isinstance(batch, dict):
        raise EslError(f"{path}: not a CIFAR python batch (holds a {type(batch).__name__}, not a dict)")
    for key, value in batch.items():  # an honest array's bytes are in the file, not made up by a call
        items = value if isinstance(value, list) else [value]
        if sum(item.nbytes for item in items if isinstance(item, np.ndarray)) > len(raw):
            raise EslError(f"{path}: CIFAR batch entry {key!r} is larger than the file itself")
    return batch


def _as_array(value: Any, what: str, path: Path) -> np.ndarray:
    """A list or array ``value`` as an array (never a cast: numpy picks the type)."""
    if not isinstance(value, np.ndarray | list):
        raise EslError(f"{path}: CIFAR {what} is a {type(value).__name__}, not a list or an array")
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        raise EslError(f"{path}: CIFAR {what} is not a regular array ({error})") from None


def _batch_labels(value: Any, classes: int, path: Path) -> np.ndarray:
    """The labels ``[N]``: integers ``0..classes-1``, at least one."""
    labels = _as_array(value, "labels", path)
    if labels.ndim != 1 or len(labels) == 0:
        raise EslError(f"{path}: CIFAR labels have shape {labels.shape}, expected [N] with N > 0")
    check_labels(labels, classes, str(path))
    return labels.astype(np.int64)


def _batch_images(value: Any, count: int, path: Path) -> np.ndarray:
    """The images ``[count, 3, 32, 32]`` uint8 from ``[count, 3072]`` integers ``0..255``."""
    data = _as_array(value, "data", path)
    expected = (count, CIFAR_PIXELS)
    if data.shape != expected:
        raise EslError(f"{path}: CIFAR data has shape {data.shape}, expected {expected} ({count} labels)")
    return as_pixels(data, f"{path}: CIFAR data").reshape(-1, 3, 32, 32)


def _cifar_split(paths: list[Path], label_key: bytes, classes: int) -> ArraySplit:
    images, labels = [], []
    for path in paths:
        batch = _unpickle(path)
        for key in (b"data", label_key):
            if key not in batch:
                raise EslError(f"{path}: CIFAR batch lacks {key.decode()}")
        labels.append(_batch_labels(batch[label_key], classes, path))
        images.append(_batch_images(batch[b"data"], len(labels[-1]), path))
    return ArraySplit(np.concatenate(images), np.concatenate(labels))


def _cifar_binary_split(paths: list[Path], label_bytes: int, classes: int) -> ArraySplit:
    """Records of ``label_bytes`` label bytes (the last one the label used) and 3072 pixel bytes."""
    images, labels = [], []
    record = label_bytes + CIFAR_PIXELS
    for path in paths:
        raw = _read_file(path, "CIFAR binary batch")
        if len(raw) == 0 or len(raw) % record:
            raise EslError(f"{path}: {len(raw)} bytes are not whole CIFAR records of {record} bytes")
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
        check_labels(rows[:, label_bytes - 1], classes, str(path))
        labels.append(rows[:, label_bytes - 1].astype(np.int64))
        images.append(rows[:, label_bytes:].reshape(-1, 3, 32, 32))
    return ArraySplit(np.concatenate(images), np.concatenate(labels))


def load_cifar(path: str | os.PathLike[str], classes: int = 10) -> tuple[ArraySplit, ArraySplit]:
    """``(train, test)`` of CIFAR-10 or CIFAR-100 from the python batches, or the binary ones when the
    folder holds only those (``cifar-10-batches-bin``: ``data_batch_<i>.bin``, ``test_batch.bin``,
    one label byte per record; ``cifar-100-binary``: ``train.bin``, ``test.bin``, coarse and fine)."""
    if classes == 10:
        folder = _folder(path, "cifar-10-batches-py", "cifar-10-batches-bin")
        train, test = [f"data_batch_{index}" for index in range(1, 6)], ["test_batch"]
        label_key, label_bytes = b"labels", 1
    elif classes == 100:
        folder = _folder(path, "cifar-100-python", "cifar-100-binary")
        train, test, label_key, label_bytes = ["train"], ["test"], b"fine_labels", 2
    else:
        raise EslError(f"CIFAR has 10 or 100 classes, not {classes}")
    binary = not (folder / train[0]).exists() and (folder / f"{train[0]}.bin").exists()

    def read(names: list[str]) -> ArraySplit:
        if binary:
            return _cifar_binary_split([folder / f"{name}.bin" for name in names], label_bytes, classes)
        return _cifar_split([folder / name for name in names], label_key, classes)

    return read(train), read(test)


# ---------------------------------------------------------------- event data


def require_tonic() -> None:
    """Refuse with one line naming the extra to install when tonic (the event-data library) is absent."""
    try:
        import tonic  # noqa: F401
    except ImportError:
        raise EslError(
            "event datasets (N-MNIST, DVS-CIFAR10) need tonic: pip install 'esl-hw[events]'"
        ) from None


def events_to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], timesteps: int) -> np.ndarray:
    """Frames ``[T, 2, H, W]`` (float32 event counts) of one recording, ``T`` equal time bins (tonic)."""
    from tonic.transforms import ToFrame

    if len(events) == 0:
        return np.zeros((timesteps, sensor_size[2], sensor_size[1], sensor_size[0]), dtype=np.float32)
    frames = ToFrame(sensor_size=sensor_size, n_time_bins=timesteps)(events)
    return np.asarray(frames, dtype=np.float32)


def _recordings(folder: Path, suffix: str) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix == suffix)


def _recording_frames(
    path: Path, reader: Callable[[Path], np.ndarray], sensor: tuple[int, int, int], steps: int
) -> np.ndarray:
    """Frames of the recording ``path``; whatever a damaged file makes tonic raise is one error."""
    try:
        return events_to_frames(reader(path), sensor, steps)
    except EslError:
        raise
    except Exception as error:  # tonic and aedat raise anything from IndexError to RuntimeError
        raise EslError(f"{path}: damaged event recording ({type(error).__name__}: {error})") from None


def _frames(
    files: list[tuple[Path, int]],
    reader: Callable[[Path], np.ndarray],
    sensor: tuple[int, int, int],
    steps: int,
) -> ArraySplit:
    if not files:
        return ArraySplit(
            np.zeros((0, steps, sensor[2], sensor[1], sensor[0]), np.float32), np.zeros(0, np.int64)
        )
    frames = [_recording_frames(path, reader, sensor, steps) for path, _ in files]
    return ArraySplit(np.stack(frames), np.array([label for _, label in files], dtype=np.int64))


def read_nmnist(path: Path) -> np.ndarray:
    """Events of one N-MNIST ``.bin`` recording (``tonic.io.read_mnist_file``)."""
    from tonic.datasets import NMNIST
    from tonic.io import read_mnist_file

    size = path.stat().st_size
    if size % 5:
        raise EslError(f"{path}: {size} bytes are not whole N-MNIST events of 5 bytes")
    return read_mnist_file(str(path), dtype=NMNIST.dtype)


def read_cifar10_dvs(path: Path) -> np.ndarray:
    """Events of one DVS-CIFAR10 ``.aedat4`` recording (``tonic.io.read_aedat4``)."""
    try:
        from tonic.io import read_aedat4

        return read_aedat4(str(path))
    except ImportError as error:
        raise EslError(f"reading {path} needs the 'aedat' package ({error})") from None


def load_nmnist(
    path: str | os.PathLike[str], timesteps: int, limit: int | None = None
) -> tuple[ArraySplit, ArraySplit]:
    """``(train, test)`` N-MNIST frames ``[N, T, 2, 34, 34]``; ``limit`` recordings per split at most."""
    require_tonic()
    root = _folder(path, "NMNIST")
    splits = []
    for name in ("Train", "Test"):
        folder = root / name
        if not folder.is_dir():
            raise EslError(f"N-MNIST folder {folder} is missing")
        files = [
            (recording, digit)
            for digit in range(10)
            if (folder / str(digit)).is_dir()
            for recording in _recordings(folder / str(digit), ".bin")
        ]
        if not files:
            raise EslError(f"N-MNIST folder {folder} holds no <digit>/*.bin recordings")
        splits.append(_frames(files[:limit], read_nmnist, NMNIST_SENSOR, timesteps))
    return splits[0], splits[1]


def load_cifar10_dvs(
    path: str | os.PathLike[str],
    timesteps: int,
    train_fraction: float = 0.9,
    reader: Callable[[Path], np.ndarray] = read_cifar10_dvs,
) -> tuple[ArraySplit, ArraySplit]:
    """``(train, test)`` DVS-CIFAR10 frames ``[N, T, 2, 128, 128]`` split per class by file name."""
    require_tonic()
    root = _folder(path, "CIFAR10DVS")
    train_files, test_files = [], []
    for label, name in enumerate(CIFAR10_DVS_CLASSES):
        folder = root / name
        if not folder.is_dir():
            raise EslError(f"DVS-CIFAR10 class folder {folder} is missing")
        recordings = _recordings(folder, ".aedat4")
        cut = round(train_fraction * len(recordings))
        train_files += [(recording, label) for recording in recordings[:cut]]
        test_files += [(recording, label) for recording in recordings[cut:]]
    return (
        _frames(train_files, reader, CIFAR10_DVS_SENSOR, timesteps),
        _frames(test_files, reader, CIFAR10_DVS_SENSOR, timesteps),
    )

"""Dataset directory checks: layout, images per class and split, unreadable files.

Counting only lists directories (seconds even for Mini-ImageNet), so runs
call `scan` before decoding anything; `report` also opens every image with
the loaders' own decoders. Command line:

  python -m supervised_reptile.check_data DATA_DIR   (`cli.check_data_main`)

exits 0 when the data is usable as it is (notes about counts that differ
from the original's may still be printed), 1 when it found problems
(unreadable images, missing splits, empty classes), 2 for a missing
directory or bad flags.
"""

import glob
import os
import tempfile
from typing import Callable, Sequence

from supervised_reptile.data import class_pool, forms, omniglot, registry

#: The original Omniglot sets (Lake et al.).
OMNIGLOT_CHARACTERS = {1623: "the full set", 964: "images_background", 659: "images_evaluation"}
OMNIGLOT_DRAWINGS = 20
_FETCH_HINT = "download it with `./fetch_data.sh {dataset}` or pass `data_dir`"
#: Data notes a training run prints before one line that points to the full check.
RUN_NOTES = 5


def guess_dataset(data_dir: str) -> str:
    """The dataset `data_dir` most likely holds (`registry.guess`)."""
    return registry.guess(data_dir)


def _count(class_dir: str, suffix: str) -> int:
    return sum(1 for n in os.listdir(class_dir) if n.endswith(suffix))


def _require_dir(data_dir: str, dataset: str) -> None:
    if not os.path.isdir(data_dir):
        what = "is not a directory" if os.path.exists(data_dir) else "does not exist"
        raise FileNotFoundError(f"data directory {data_dir!r} {what}; "
                                + _FETCH_HINT.format(dataset=dataset))


def scan_omniglot(data_dir: str) -> dict[str, int]:
    """Character directory -> number of PNG files, in the loader's order.

    Raises:
      FileNotFoundError: no directory, or no `<alphabet>/character*/` in it
        (naming a deeper directory that has them, if any).
    """
    _require_dir(data_dir, "omniglot")
    try:
        chars = omniglot.list_characters(data_dir)
    except FileNotFoundError as err:
        deeper = sorted({os.path.dirname(os.path.dirname(p)) for p in
                         glob.glob(os.path.join(glob.escape(data_dir), "*", "*", "character*"))})
        if deeper:
            raise FileNotFoundError(f"{err}; the characters are one level deeper: pass "
                                    f"`data_dir` {deeper[0]}") from None
        entries = os.listdir(data_dir)
        parent = os.path.dirname(os.path.abspath(data_dir))
        if any(e.startswith("character") for e in entries):
            raise FileNotFoundError(f"{data_dir!r} looks like one alphabet (it holds "
                                    f"character*/ folders): pass its parent, `data_dir` "
                                    f"{parent}, which holds every alphabet") from None
        if any(e.endswith(".png") for e in entries):
            raise FileNotFoundError(f"{data_dir!r} looks like one character (it holds .png "
                                    f"drawings): pass the folder of all alphabets, `data_dir` "
                                    f"{os.path.dirname(parent)}") from None
        raise FileNotFoundError(f"{err} (an empty or unfinished download?)") from None
    return {c: _count(c, ".png") for c in chars}


def _odd_counts(counts: dict[str, int], expected: int, where: str) -> list[str]:
    odd = {c: n for c, n in counts.items() if n != expected}
    if not odd:
        return []
    shown = ", ".join(f"{c} ({n})" for c, n in list(odd.items())[:5])
    more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
    return [f"{len(odd)} {where} classes do not have the original's {expected} images: "
            f"{shown}{more}"]


def omniglot_notes(counts: dict[str, int]) -> list[str]:
    """How a scanned Omniglot directory differs from the original's sets."""
    n = len(counts)
    notes = []
    if n not in OMNIGLOT_CHARACTERS:
        known = ", ".join(f"{k} ({v})" for k, v in OMNIGLOT_CHARACTERS.items())
        notes.append(f"{n} characters found; the original sets have {known}: a subset, "
                     "or an incomplete download?")
    return notes + _odd_counts(counts, OMNIGLOT_DRAWINGS, "character")


def notes(form: forms.Form, splits: dict[str, dict[str, int]]) -> list[str]:
    """How a scanned split dataset differs from its standard version (`Form.notes`)."""
    return form.notes(splits)


def run_warnings(form: forms.Form, splits: dict[str, dict[str, int]], data_dir: str,
                 dataset: str) -> list[str]:
    """The `notes` a training run prints: the first `RUN_NOTES`, each naming the
    command that checks the data, then one line for the rest (a renamed copy
    differs in every class: no page of warnings)."""
    check = f"python -m supervised_reptile.check_data {data_dir} --dataset {dataset}"
    found = notes(form, splits)
    lines = [f"{note} (check with `{check}`)" for note in found[:RUN_NOTES]]
    if len(found) > RUN_NOTES:
        lines.append(f"{len(found) - RUN_NOTES} more difference(s) from the standard dataset; "
                     f"`{check}` lists them all")
    return lines


def stale_downloads(data_dir: str) -> list[str]:
    """Leftover `.fetch_tmp.*` folders of interrupted `fetch_data.sh` runs next to `data_dir`."""
    parent = os.path.dirname(os.path.abspath(data_dir))
    return sorted(glob.glob(os.path.join(glob.escape(parent), ".fetch_tmp.*")))


def unreadable(class_files: Sequence[Sequence[str]]) -> list[str]:
    """Lines naming every Omniglot file that the run's decoder cannot read."""
    bad = []
    # One class at a time keeps the memory at one class's images.
    for files in class_files:
        class_pool.decode_classes([files], omniglot.read_image, (omniglot.IMAGE_SIZE,) * 2, ["c"],
                                  on_skip=bad.append)
    return bad


def unreadable_in(form: forms.Form) -> tuple[list[str], int]:
    """`(lines naming every file that does not decode, images read)`, one split
    at a time, decoded into a scratch file rather than memory."""
    bad, total = [], 0
    with tempfile.TemporaryDirectory() as scratch:
        for split in forms.SPLITS:
            allocate = forms.memmap_allocator(os.path.join(scratch, f"{split}.npy"))
            total += int(form.read_split(split, bad.append, allocate).counts.sum())
    return bad, total + len(bad)


def report(data_dir: str, dataset: str | None = None, decode: bool = True,
           log_fn: Callable[[str], None] = print) -> int:
    """Prints what is in `data_dir` and what is wrong with it.

    Returns:
      0 if usable as it is, 1 if problems were found.
    """
    dataset = dataset or guess_dataset(data_dir)
    log_fn(f"{dataset} in {data_dir}")
    checked = "images not opened (`no_decode`)"
    if dataset == "omniglot":
        counts = scan_omniglot(data_dir)
        groups = {"all": counts}
        log_fn(f"  {len({os.path.dirname(c) for c in counts})} alphabets, {len(counts)} "
               f"characters, {sum(counts.values())} images")
        found = omniglot_notes(counts)
        problems = [f"class {c} has no .png images" for c, n in counts.items() if n == 0]
        if decode:
            files = [class_pool.list_images(c, ".png") for c in counts]
            problems += unreadable(files)
            checked = f"{sum(map(len, files))} images opened"
    else:
        form = registry.find(data_dir, dataset)
        log_fn(f"  form: {form.description}")
        groups = form.scan()
        for split, counts in groups.items():
            log_fn(f"  {split}: {len(counts)} classes, {sum(counts.values())} images")
        found = notes(form, groups)
        problems = [f"class {c} of the {s} split has no images"
                    for s, counts in groups.items() for c, n in counts.items() if n == 0]
        if decode and not problems:
            bad, opened = unreadable_in(form)
            problems += bad
            checked = f"{opened} images opened"
    problems += [f"leftover of an interrupted fetch_data.sh run: {p} (safe to delete)"
                 for p in stale_downloads(data_dir)]
    for line in found:
        log_fn(f"note: {line}")
    for line in problems:
        log_fn(f"problem: {line}")
    log_fn(f"{len(problems)} problem(s), {len(found)} note(s); {checked}" if problems
           else f"usable: no problems found, {len(found)} note(s); {checked}")
    return 1 if problems else 0

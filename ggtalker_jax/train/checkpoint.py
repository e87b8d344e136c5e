"""Checkpoints of a training run, over orbax-checkpoint: complete or absent, resumed on their own.

A work directory holds::

    config.json          the resolved config of the run (written atomically)
    identities.json      the training identities' names, in table order (stages that have one)
    checkpoints/<step>/  orbax steps: ``state`` (the TrainState's arrays) and ``meta`` (JSON:
                         step, data position, RNG key); the newest ``keep`` are kept
    tensorboard/         event files (:class:`ggtalker_jax.train.logging.TrainLogger`)
    eval/                the stage's evaluation of the run (metrics, grids)

Why each orbax call:

- ``CheckpointManager`` with ``item_names=("state", "meta")`` and ``args.Composite``: one step
  directory holds the arrays (``StandardSave``: a pytree of sharded ``jax.Array``s, written
  by every process for its shards, read back into the template's shardings by
  ``StandardRestore``) and a small JSON (``JsonSave``) for the host-side values.
- Atomicity: orbax writes a step into ``<step>.orbax-checkpoint-tmp-<time>`` and renames it
  when every item is written (local and POSIX file systems), so a kill leaves at most the
  temporary folder; ``cleanup_tmp_directories=True`` removes such leftovers when the next run
  opens the folder, and ``latest_step`` never sees them.
- ``preservation_policy=LatestN(keep)`` (``max_to_keep`` is deprecated in 0.12).
- Async saving (the default): ``save`` copies the arrays to host memory and returns; the
  files are written in a background thread, so the donated state can be reused at once.
  ``close`` (or the ``with`` block's end) waits for the last save.

The RNG key is stored as its raw key data plus the implementation's name in the JSON, since a
typed key is not an array orbax serialises.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from ggtalker_jax.errors import InputError
from ggtalker_jax.outputs import exclusive, is_partial, output_dir, remove_owned, write_text_atomic
from ggtalker_jax.train.state import TrainState

CONFIG_NAME = "config.json"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
EVAL = "eval"
"""Where a stage's evaluation of the run writes (``ggtalker e2v eval``'s default)."""
IDENTITIES_NAME = "identities.json"
"""A stage's table of training identities, when it has one (the A2E prior's)."""
RESUMABLE_KEYS = ("steps", "log_every", "checkpoint_every", "keep_checkpoints", "eval_every")
"""Config fields a run may change and still resume (the last component of a dotted key)."""


def _quiet_orbax() -> None:
    # orbax logs every save and restore at INFO through absl; a console that shows INFO
    # (a CLI with logging configured) would scroll with them. Warnings still show.
    absl = logging.getLogger("absl")
    absl.setLevel(max(absl.getEffectiveLevel(), logging.WARNING))


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def config_differences(old_json: str, new_json: str, resumable_keys: Iterable[str]) -> list:
    """``[(dotted key, old, new)]`` where two config JSONs differ, ignoring ``resumable_keys``
    (matched against a key's last component)."""
    old, new = _flatten(json.loads(old_json)), _flatten(json.loads(new_json))
    skip = set(resumable_keys)
    keys = sorted(k for k in old.keys() | new.keys() if k.rsplit(".", 1)[-1] not in skip)
    missing = "(absent)"
    return [
        (k, old.get(k, missing), new.get(k, missing))
        for k in keys
        if old.get(k, missing) != new.get(k, missing)
    ]


def describe_differences(diffs: list, shown: int = 4) -> str:
    """``a.b (1 there, 2 here), c (...) and 3 more fields``: the first ``shown`` of
    :func:`config_differences`' entries, for a one-line refusal."""
    parts = [f"{key} ({old!r} there, {new!r} here)" for key, old, new in diffs[:shown]]
    more = len(diffs) - shown
    return ", ".join(parts) + (f" and {more} more field{'s' * (more > 1)}" if more > 0 else "")


def _owned(path: Path) -> bool:
    owned = (CONFIG_NAME, IDENTITIES_NAME, CHECKPOINTS, TENSORBOARD, EVAL)
    return path.name in owned or is_partial(path)


class Checkpointer:
    """Save and restore a run's state in ``workdir``; holds the folder's lock until closed.

    Args:
      workdir: the run's folder (created if missing).
      config_json: the resolved config (``Config.to_json()``): written to ``config.json`` on
        first use, compared with it on every later one.
      every: save interval in steps (the loop asks :meth:`should_save`); a killed run loses
        at most this many steps.
      keep: how many of the newest checkpoints stay.
      force: start over: remove this run's config, checkpoints and logs first (refused if the
        folder holds anything else).
      resumable_keys: config fields that may differ from the saved config.

    Raises:
      InputError: ``workdir`` unusable, another process writing there, or a saved config
        that differs in a field outside ``resumable_keys`` (one line naming the fields, up
        to four with both values, and the fix).
    """

    def __init__(
        self,
        workdir,
        config_json: str,
        every: int,
        keep: int = 2,
        *,
        force: bool = False,
        resumable_keys: Iterable[str] = RESUMABLE_KEYS,
    ):
        if every < 1 or keep < 1:
            raise InputError(f"checkpoint every {every}, keep {keep}: expected integers >= 1")
        _quiet_orbax()
        self.workdir = output_dir(workdir, what="--workdir")
        self.every, self.keep = every, keep
        self._exit = contextlib.ExitStack()
        self._exit.enter_context(exclusive(self.workdir, "training run"))
        try:
            if force:
                remove_owned(
                    self.workdir,
                    _owned,
                    "a run's config.json, identities.json, checkpoints/, tensorboard/, eval/",
                )
            self._check_config(config_json, tuple(resumable_keys))
            self._manager = ocp.CheckpointManager(
                (self.workdir / CHECKPOINTS).absolute(),
                item_names=("state", "meta"),
                options=ocp.CheckpointManagerOptions(
                    preservation_policy=ocp.checkpoint_managers.LatestN(keep),
                    cleanup_tmp_directories=True,
                    create=True,
                ),
            )
        except BaseException:
            self._exit.close()
            raise

    def _check_config(self, config_json: str, resumable_keys: tuple[str, ...]) -> None:
        path = self.workdir / CONFIG_NAME
        if path.is_file():
            old_json = path.read_text(encoding="utf-8")
            try:
                diffs = config_differences(old_json, config_json, resumable_keys)
            except json.JSONDecodeError as e:
                raise InputError(
                    f"{path}: not a config JSON ({e.msg}); choose another --workdir or pass "
                    "--force to start over"
                ) from None
            if diffs:
                names = json.loads(old_json).get("name"), json.loads(config_json).get("name")
                raise InputError(
                    f"{self.workdir}: holds a run of config {names[0]!r} that differs from this "
                    f"one ({names[1]!r}) in {describe_differences(diffs)}; choose another "
                    "--workdir or pass --force to start over"
                )
            if old_json == config_json:
                return
        write_text_atomic(path, config_json)

    # -- saving --------------------------------------------------------------------------

    def should_save(self, step: int) -> bool:
        """Whether ``step`` is on the save interval."""
        return step % self.every == 0

    def save(self, step: int, state: TrainState, data_position: int, rng_key: jax.Array) -> None:
        """Save ``state`` as step ``step`` (asynchronously; a step already saved is kept).

        Args:
          step: the number of steps taken (``state.step``).
          state: the state (sharded or not); its arrays are copied before this returns.
          data_position: the data source position the next step reads.
          rng_key: the loop's key for the next step (a typed key).
        """
        if step in self._manager.all_steps():
            return
        meta = {
            "step": int(step),
            "data_position": int(data_position),
            "key": np.asarray(jax.random.key_data(rng_key)).tolist(),
            "key_impl": str(jax.random.key_impl(rng_key)),
        }
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state.arrays()), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )

    def wait(self) -> None:
        """Block until the last save is on disk."""
        self._manager.wait_until_finished()

    # -- restoring -----------------------------------------------------------------------

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or ``None``."""
        return self._manager.latest_step()

    def restore(
        self, template: TrainState, step: int | None = None
    ) -> tuple[TrainState, int, jax.Array] | None:
        """The checkpoint ``step`` (default: the newest) restored into ``template``'s
        structure and shardings, or ``None`` when there is none.

        Returns:
          ``(state, data_position, rng_key)``.

        Raises:
          InputError: a checkpoint whose arrays do not fit the template (a model of another
            shape saved under the same config).
        """
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template.arrays())
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                ),
            )
        except (ValueError, KeyError) as e:
            raise InputError(
                f"{self.workdir / CHECKPOINTS / str(step)}: does not fit this model "
                f"({str(e).splitlines()[0][:200]}); choose another --workdir or pass --force"
            ) from None
        meta = restored["meta"]
        key = jax.random.wrap_key_data(np.asarray(meta["key"], np.uint32), impl=meta["key_impl"])
        return template.replace(**restored["state"]), int(meta["data_position"]), key

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for the last save, then release the folder."""
        try:
            self._manager.wait_until_finished()
            self._manager.close()
        finally:
            self._exit.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- restoring a finished run --------------------------------------------------------------


def read_run_config(workdir: str | Path, section: str, from_dict, stage: str, command: str):
    """A run folder's ``config.json``: its text, the whole dict and its stage section parsed.

    Args:
      workdir: a run folder.
      section: the stage's key in the run config (``"e2v"``, ``"a2e"``, ``"inpainter"``).
      from_dict: the section's parser (``e2v_config_from_dict``, ...).
      stage: the stage's name in messages, with its article (``"an E2V"``).
      command: the command that writes such a folder (``"ggtalker e2v train"``).

    Returns:
      ``(config text, run config dict, stage config)``.

    Raises:
      InputError: no run there, or a config that is not the stage's.
    """
    path = Path(workdir) / CONFIG_NAME
    if not path.is_file():
        raise InputError(
            f"{workdir}: no training run here (no {CONFIG_NAME}); pass the --workdir of "
            f"`{command}`"
        )
    text = path.read_text(encoding="utf-8")
    try:
        run_config = json.loads(text)
        config = from_dict(run_config[section])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not {stage} run's config ({e}); train again") from None
    return text, run_config, config


def restore_newest_model(workdir: str | Path, config_text: str, model, optimizer, every: int):
    """The model of a run's newest checkpoint and its step.

    Args:
      workdir: the run folder.
      config_text: its ``config.json`` (:func:`read_run_config`), which the checkpointer checks.
      model: a freshly built model of the run's shapes (the restore's template).
      optimizer: the run's optimizer (its state is part of the template).
      every: the run's ``checkpoint_every``.

    Returns:
      ``(model, step)``.

    Raises:
      InputError: the run has no checkpoint yet, or one that does not fit ``model``.
    """
    template = TrainState.from_model(model, optimizer)
    with Checkpointer(workdir, config_text, every) as ckpt:
        restored = ckpt.restore(template)
    if restored is None:
        raise InputError(f"{workdir}: the run has no checkpoint yet; train first")
    state = restored[0]
    return state.model(), int(state.step)

"""Prior training on every GPU of every host: the ``gpu`` config with each prior's global batch
multiplied by the device count (the batch per GPU stays what one GPU trains with).

Commands (one process per host; every GPU of the host is used):

- one host: ``ggtalker e2v train --config prior_multi --workdir DIR`` (likewise ``a2e train``
  and ``inpainter train``) trains the prior of the ``gpu`` config on all local GPUs, with a
  global batch of 32 x GPUs (E2V), 64 x GPUs (A2E) and 16 x GPUs (inpainter), and writes the
  run folder (``config.json``, ``checkpoints/``, ``tensorboard/``, ``eval/``) that ``ggtalker
  <prior> export`` turns into a prior.
- several hosts: the same command on each host with ``JAX_COORDINATOR_ADDRESS=host0:port``,
  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` set (or under Slurm / Open MPI, detected on
  their own); ``--workdir`` must be one shared folder. The README's "Training on many GPUs"
  gives the launch lines.

The learning rates stay those of ``gpu``: the batch per device is unchanged, and the larger
global batch averages more samples per step. The device count is part of the resolved config
(its batch sizes), so a run resumes only on as many devices as it started on.
"""

import dataclasses

from ggtalker_jax.config import Config


def get_config(arg: str | None = None) -> Config:
    import jax

    from ggtalker_jax.configs import gpu

    del arg
    base = gpu.get_config()
    n = jax.device_count()
    return dataclasses.replace(
        base,
        name="prior_multi",
        e2v=dataclasses.replace(base.e2v, batch_size=base.e2v.batch_size * n),
        a2e=dataclasses.replace(base.a2e, batch_size=base.a2e.batch_size * n),
        inpainter=dataclasses.replace(base.inpainter, batch_size=base.inpainter.batch_size * n),
    )

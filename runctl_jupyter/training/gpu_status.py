"""What `aws status` shows of a GPU instance's GPUs: read with the run's status in one SSM command
(status.sh runs nvidia-smi too), with the idle-GPU warning when a run has paid for GPUs it does not use."""

from __future__ import annotations

from .. import gpus
from ..aws.session import Context
from ..models import Instance
from .follow import read_status
from .runs import project_for_instance

NO_DRIVER = "no NVIDIA driver on this image (nvidia-smi not found): a Deep Learning AMI has it"


def observe_gpus(ctx: Context, inst: Instance) -> None:
    """Fill ``inst.gpus`` (or ``inst.gpu_note``) and ``inst.warnings`` for a running, SSM-online GPU
    instance. One SSM round trip; raises BackendError when the instance cannot be asked."""
    reply = read_status(ctx, inst.instance_id, project_for_instance(ctx, inst, None))
    inst.gpus = list(reply.gpus)
    if reply.nvidia_smi == "missing":
        inst.gpu_note = NO_DRIVER
    elif reply.nvidia_smi == "failed":
        inst.gpu_note = f"nvidia-smi failed: {reply.gpu_error or 'no message'}"
    warning = gpus.idle_warning(reply.run_id, reply.state, reply.started, ctx.now(), reply.gpus)
    if warning:
        inst.warnings.append(warning)

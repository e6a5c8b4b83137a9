"""Fleets: one training across several instances (multi-node, torch.distributed as the engine), by
concern: :mod:`.members` (a fleet's nodes, found by their ``runctl:fleet`` tag), :mod:`.network` (its
subnet, security group and placement group), :mod:`.create` (every node or none), :mod:`.commands`
(one SSM command for every node), :mod:`.train` + :mod:`.sync_once` (one run id, the code synced
once, every node started or none), :mod:`.follow` (the logs and the watch that ends the run
everywhere when one node fails), :mod:`.status`, :mod:`.ending` (terminate, guarded per node).

Backend only: nothing here prints or displays; front ends reach it through :mod:`runctl_jupyter.api`.
"""

from .create import create_fleet, wait_ready
from .ending import for_each_node, node_echo, terminate_fleet
from .follow import FleetResult, NodeRun, Prefixer, follow_fleet
from .members import Fleet, find, live_members, resource_name, wants_cluster_placement
from .status import FleetRunInfo, run_info, status_frame
from .train import DEFAULT_MASTER_PORT, FleetLaunch, end_runs, rendezvous_env, start_fleet_training

__all__ = [
    "DEFAULT_MASTER_PORT", "Fleet", "FleetLaunch", "FleetResult", "FleetRunInfo", "NodeRun", "Prefixer",
    "create_fleet", "end_runs", "find", "follow_fleet", "for_each_node", "live_members", "node_echo", "rendezvous_env",
    "resource_name", "run_info", "start_fleet_training", "status_frame", "terminate_fleet", "wait_ready",
    "wants_cluster_placement",
]

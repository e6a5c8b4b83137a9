"""Every EC2 tag key runctl reads or writes, in one place (instances, volumes, snapshots).

Tags are runctl's memory on AWS: what an instance is for, its newest run, what its last stop found
on its disk, what it has cost so far. The cost table, the guards and the sandbox read the same keys.
"""

from __future__ import annotations

# --- what an instance (or snapshot) is -------------------------------------------------------------
CREATED_TAG = "runctl:created"              # runctl made it (instances: the create's ISO date; snapshots: the day)
PROJECT_TAG = "runctl:project"              # the project of its newest run (or the one it was created for)
DISK_GB_TAG = "runctl:disk-gb"              # the root volume's size asked at create
IMAGE_TAG = "runctl:image"                  # the image create chose and why ("LABEL, ARCH: REASON"; `status` shows it)
SPOT_TYPE_TAG = "runctl:spot-type"          # "one-time": AWS can only terminate it, never stop it
SPOT_FALLBACK_TAG = "runctl:spot-fallback"  # why a --spot create fell back to on-demand (the AWS error code)
FROM_SNAPSHOT_TAG = "runctl:from-snapshot"  # on an instance `create --from-snapshot` launched
RESTORE_DEVICE_TAG = "runctl:restore-device"  # where that snapshot's volume is attached
FLEET_TAG = "runctl:fleet"                  # the fleet it belongs to (instances, its security group and placement group)
FLEET_NODE_TAG = "runctl:fleet-node"        # its node index in that fleet (0 = the rendezvous node)

# --- its runs --------------------------------------------------------------------------------------
RUN_ID_TAG = "runctl:run-id"                # the newest run
RUN_STATE_TAG = "runctl:run-state"          # running | stopped | exit N
LAST_CHECKPOINT_TAG = "runctl:last-checkpoint"
GUARDIAN_TAG = "runctl:guardian"            # what the on-instance guardian watches, or what it did
EVIDENCE_TAG = "runctl:evidence"            # what the last stop found on its disk (guard.py)

# --- its cost so far (LaunchTime resets at each start) ---------------------------------------------
LEDGER_SECONDS_TAG = "runctl:ledger-seconds"
LEDGER_USD_TAG = "runctl:ledger-usd"
LEDGER_THROUGH_TAG = "runctl:ledger-through"

# --- an EBS snapshot terminate --snapshot made ----------------------------------------------------
INSTANCE_TAG = "runctl:instance"            # the instance it was taken from
DEVICE_TAG = "runctl:device"                # the device of the volume it saved

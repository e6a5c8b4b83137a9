"""The embedded AWS sandbox: one local server per sandbox folder (moto + fidelity middleware).

Only :mod:`runctl_jupyter.sandbox.control` is meant to be imported by the rest of runctl; it talks
to the server over HTTP and imports neither moto nor boto3. The server side modules:

    server.py       entry point (``python -m runctl_jupyter.sandbox.server --dir DIR``), server.json
    app.py          the WSGI app: routes control/IMDS/intercepted AWS calls, forwards the rest to moto
    world.py        shared state: dirs, the moto lock, clock, delays, per-instance metadata
    protocol.py     AWS request parsing (service/region/action) and protocol-correct error bodies
    moto_seams.py   every touch of moto internals (moto >=5.1,<5.3)
    lifecycle.py    EC2 Run/Start/Stop/Terminate with delays, LaunchTime, spot refusals
    processes.py    finding (/proc environ marker) and killing an instance's processes
    ssm_exec.py     running AWS-RunShellScript invocations as real processes
    ssm_api.py      the SSM JSON actions the sandbox implements itself
    pricing.py      AWSPriceListService.GetProducts from the package's price snapshot
    spot.py         EC2 DescribeSpotPriceHistory (per-AZ deterministic prices)
    imds.py         per-instance IMDSv2 under /_imds/<iid>/latest/...
    faults.py       seeded throttling / latency / dropped calls
    clock.py        the sandbox clock (real, frozen, moved)
    snapshot.py     a JSON-able picture of the whole world
    control_api.py  the /_runctl/... HTTP JSON control API
"""

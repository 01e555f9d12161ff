import asyncio, sys, time, warnings
from dask.distributed import Client
async def probe(addr, timeout):
    client = Client(addr, asynchronous=True, timeout=timeout, set_as_default=False)
    try:
        await asyncio.wait_for(client.__await__() if False else _wait(client), timeout)
        return len(client.scheduler_info().get("workers", {}))
    finally:
        await client.close()
async def _wait(c):
    return await c
for a in sys.argv[1:]:
    t = time.time()
    try:
        print(a, asyncio.run(probe(a, 2.0)))
    except BaseException as e:
        print(a, "ERR", type(e).__name__, str(e)[:100], round(time.time()-t, 2))

# Technique: an event loop blocked in select() for an hour: exceptions injected into the thread wait until
#            select returns
# Goal: f (time exhaustion)
# Source: written for codeloop (asyncio - in the data-agent profile)
# Requires: stdlib (asyncio)
import asyncio


async def main():
    await asyncio.sleep(3600)
    return "woke up"


print(asyncio.run(main()))

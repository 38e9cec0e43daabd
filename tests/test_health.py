"""GET /healthz's readings of the application's status, without a cluster: at most one
controller read per interval per replica, whatever the rate of probes."""

import asyncio

from multistage.http.health import Health, HealthReadings

READY = Health(ready=True, deployments={"Ingress": "HEALTHY"})


class Controller:
    """A status source that counts its reads; each takes ``read_s``."""

    def __init__(self, read_s: float = 0.05, fails: bool = False) -> None:
        self.reads = 0
        self.read_s = read_s
        self.fails = fails

    async def read(self) -> Health:
        self.reads += 1
        await asyncio.sleep(self.read_s)
        if self.fails:
            raise ConnectionError("the controller is unreachable")
        return READY


def test_many_concurrent_probes_make_one_read():
    async def scenario():
        controller = Controller()
        readings = HealthReadings(controller.read, every_s=1.0)
        answers = await asyncio.gather(*(readings.current() for _ in range(200)))
        assert answers == [READY] * 200
        assert controller.reads == 1

    asyncio.run(scenario())


def test_a_stale_reading_is_answered_at_once_and_refreshed_once_in_the_background():
    async def scenario():
        now = [0.0]
        controller = Controller(read_s=0.05)
        readings = HealthReadings(controller.read, every_s=1.0, clock=lambda: now[0])
        await readings.current()
        now[0] = 0.5
        await asyncio.gather(*(readings.current() for _ in range(50)))
        assert controller.reads == 1  # fresh: no read
        now[0] = 1.5
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(readings.current() for _ in range(50)))
        assert asyncio.get_running_loop().time() - started < controller.read_s  # no wait
        await asyncio.sleep(2 * controller.read_s)
        assert controller.reads == 2  # stale: one refresh for all fifty

    asyncio.run(scenario())


def test_an_unreadable_controller_reads_not_ready():
    async def scenario():
        readings = HealthReadings(Controller(fails=True).read)
        assert await readings.current() == Health(ready=False)

    asyncio.run(scenario())

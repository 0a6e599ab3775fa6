"""diskv through redis-py, the Python Redis client.

Start diskv with the Redis protocol (`make run` serves it on 127.0.0.1:6380), then:

    pip install redis
    python3 examples/redis-py/quickstart.py [HOST:PORT]
"""

import sys

import redis

host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:6380").rsplit(":", 1)
r = redis.Redis(host=host, port=int(port), decode_responses=True)

r.set("greeting", "hello")
print("GET greeting ->", r.get("greeting"))
# One replicated increment, applied exactly once even if the store retries it.
print("INCR visits ->", r.incr("visits"))
# A conditional write: only the first caller gets the lock.
print("SET lock NX ->", r.set("lock", "me", nx=True))
print("SET lock NX ->", r.set("lock", "you", nx=True))
print("APPEND log ->", r.append("log", "line;"))
print("GETDEL lock ->", r.getdel("lock"))
# Plain pipelining: many commands in flight, answered in order. diskv has no
# MULTI/EXEC, so ask for a pipeline without a transaction.
pipe = r.pipeline(transaction=False)
for _ in range(10):
    pipe.incr("visits")
print("10 pipelined INCR ->", pipe.execute()[-1])

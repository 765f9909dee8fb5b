"""The shared model cache: one copy per key while used, thread-safe, forgettable."""
import gc
import threading

from realisid_core.cache import SharedModels


class Model:
    pass


def test_one_copy_per_key_across_threads_and_freed_when_unused():
    cache, loads, got = SharedModels(), [], []

    def load():
        loads.append(1)
        return Model()

    threads = [threading.Thread(target=lambda: got.append(cache.get("a", load))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and all(m is got[0] for m in got)
    other = cache.get("b", load)
    assert other is not got[0] and sorted(cache.keys()) == ["a", "b"]
    del other
    gc.collect()
    assert cache.keys() == ["a"]
    got.clear()
    gc.collect()
    assert cache.keys() == []


def test_forget_makes_the_next_get_load_again():
    cache = SharedModels()
    first = cache.get("k", Model)
    assert cache.forget(lambda k: k == "k") == 1
    assert cache.get("k", Model) is not first

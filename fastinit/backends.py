"""Backend registry and dispatch.

Three backends compute every op: ``numpy`` (the reference: plain NumPy, the oracle and the
fallback), ``numba`` (jitted kernels in ``fastinit._numba``) and ``c`` (the cffi extension,
wrapped in ``fastinit._ckernels``). Each keeps the same function names, one module per op, so
``kernel("rng", "uniform", "numba")`` is ``fastinit._numba.rng.uniform``.

``backend=None`` in an op means: the backend set by :func:`use` / :func:`set`, else
``FASTINIT_BACKEND``, else the fastest available that has the kernel (c, then numba, then numpy).
Naming a backend that is not available raises :class:`BackendUnavailable` with the reason.
"""
import contextlib
import importlib
import os
import threading

from . import _config

#: Preference order for backend=None: C starts with no JIT cost and runs as fast as Numba.
ORDER = ("c", "numba", "numpy")
_PACKAGES = {"numpy": "fastinit.reference", "numba": "fastinit._numba", "c": "fastinit._ckernels"}

class _State(threading.local):
    """Per-thread default backend; the class attribute makes an unset one cheap to read (a
    getattr default on a bare threading.local would cost more, on every op call)."""
    name = None


_state = _State()
_kernels = {}
_reasons = None


class BackendUnavailable(RuntimeError):
    """A backend was asked for by name but cannot run here; the message says why."""


def _probe():
    reasons = {"numpy": None}
    try:
        import numba  # noqa: F401
        reasons["numba"] = None
    except Exception as exc:  # pragma: no cover - numba is a dependency
        reasons["numba"] = f"numba failed to import: {exc}"
    from . import _c
    reasons["c"] = _c.reason
    return reasons


def _available():
    global _reasons
    if _reasons is None:
        _reasons = _probe()
    return _reasons


def available():
    """``{name: None if usable else "why not"}`` for every backend."""
    return dict(_available())


def _check_name(name, argname="backend"):
    if not isinstance(name, str) or name not in _PACKAGES:
        raise ValueError(f"{argname} must be one of {sorted(_PACKAGES)} or None, got {name!r}")
    reason = _available()[name]
    if reason is not None:
        raise BackendUnavailable(f"backend {name!r} is not available: {reason}")
    return name


_ENV_UNREAD = object()
_env_name = _ENV_UNREAD


def _env_default():
    """FASTINIT_BACKEND, read once per process (ops are called in hot loops)."""
    global _env_name
    if _env_name is _ENV_UNREAD:
        name = os.environ.get("FASTINIT_BACKEND", "").strip()
        _env_name = _check_name(name, "FASTINIT_BACKEND") if name else None
    return _env_name


def current():
    """The backend ``backend=None`` resolves to now (for ops every backend implements)."""
    name = _state.name or _env_default()
    if name is not None:
        return name
    return next(n for n in ORDER if _available()[n] is None)


def set(name):  # noqa: A001 - the public API name (fastinit.backends.set)
    """Make ``name`` the default backend of this thread; ``None`` restores the automatic choice."""
    _state.name = None if name is None else _check_name(name)


@contextlib.contextmanager
def use(name):
    """Context manager: ops inside run on backend ``name`` unless they name another."""
    previous = _state.name
    set(name)
    try:
        yield name
    finally:
        _state.name = previous


def _lookup(name, module, func):
    key = (name, module, func)
    fn = _kernels.get(key)
    if fn is None:
        try:
            mod = importlib.import_module(f"{_PACKAGES[name]}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{_PACKAGES[name]}.{module}":
                raise
            return None
        fn = getattr(mod, func, None)
        if fn is None:
            return None
        _kernels[key] = fn
    return fn


_auto = {}
_named = {}   # (backend, module, func) -> (fn, backend), once the backend was checked usable


def kernel(module, func, backend=None):
    """The function ``func`` of op module ``module`` on ``backend``; returns ``(fn, name)``.

    With ``backend=None`` and no default set, the first available backend in :data:`ORDER`
    that implements the kernel is used (cached: this sits on every op's call path).
    """
    if backend is None:
        chosen = _state.name or _env_default()
        if chosen is None:
            hit = _auto.get((module, func))
            if hit is not None:
                return hit
            for name in ORDER:
                if _available()[name] is None:
                    fn = _lookup(name, module, func)
                    if fn is not None:
                        _auto[(module, func)] = (fn, name)
                        return fn, name
            raise NotImplementedError(f"no backend implements {module}.{func}")  # pragma: no cover
        backend = chosen
    if type(backend) is str:
        hit = _named.get((backend, module, func))
        if hit is not None:
            return hit
    name = _check_name(backend)
    fn = _lookup(name, module, func)
    if fn is None:
        raise NotImplementedError(f"backend {name!r} has no kernel {module}.{func}")
    _named[(name, module, func)] = (fn, name)
    return fn, name


def set_num_threads(n):
    """Threads for Numba and C kernels alike (1 .. the number Numba was started with; any
    integer type). In a forked child kernels run on one thread whatever is set here."""
    import numbers

    import numba
    from . import _c

    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= limit:
        raise ValueError(f"n must be an integer in 1..{limit} (NUMBA_NUM_THREADS), got {n!r}")
    n = int(n)
    numba.set_num_threads(n)
    if _c.lib is not None:
        _c.lib.fi_set_num_threads(n)


def get_num_threads():
    """The thread count Numba and C kernels use in this thread (1 in a forked child)."""
    import numba

    return 1 if _config.IN_FORKED_CHILD else numba.get_num_threads()

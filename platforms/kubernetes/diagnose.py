"""Why a Deployment or a Job is not ready, in one line a person can act on: each pod's state,
its last events and the last lines of its log. Also the readiness predicate itself."""
from __future__ import annotations

from typing import Any

MAX_PODS = 3


def deployment_ready(d: Any) -> bool:
    """The full rollout predicate: the controller saw the current spec, and every desired
    replica is updated, ready and available, with no old pod left (``replicas ==
    readyReplicas`` alone is true for OLD pods in the middle of a rollout)."""
    st, want = d.status, d.spec.replicas or 0
    return ((st.observed_generation or 0) >= d.metadata.generation
            and (st.updated_replicas or 0) == want and (st.ready_replicas or 0) == want
            and (st.available_replicas or 0) == want and (st.replicas or 0) == want)


def why_not_ready(api, selector: dict[str, str]) -> str:
    """The first few pods ``selector`` picks, each described; what to look at when none."""
    label = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = api.call("list pods", api.core.list_namespaced_pod, api.namespace,
                    label_selector=label).items
    parts = [_pod(api, p) for p in pods[:MAX_PODS]]
    return " || ".join(parts) or "no pods at all (check the ReplicaSet's events)"


def _pod(api, p: Any) -> str:
    return (f"pod {p.metadata.name} {p.status.phase} [{', '.join(_states(p))}] "
            f"events: {_last_events(api, p.metadata.name) or 'none'}; "
            f"log: {_log_tail(api, p.metadata.name)[:300] or 'empty'}")


def _states(p: Any) -> list[str]:
    states = []
    for s in p.status.container_statuses or []:
        w = s.state.waiting or s.state.terminated
        states.append(f"{s.name} {getattr(w, 'reason', None) or 'running'}"
                      f"{' ready' if s.ready else ''}")
    return states


def _last_events(api, pod: str) -> str:
    try:
        evs = api.core.list_namespaced_event(api.namespace,
                                             field_selector=f"involvedObject.name={pod}").items
    except Exception:
        return "events unavailable"
    return "; ".join(f"{e.reason}: {(e.message or '')[:120]}" for e in evs[-2:])


def _log_tail(api, pod: str) -> str:
    try:
        log = api.core.read_namespaced_pod_log(pod, api.namespace, tail_lines=3, container=None)
    except Exception:
        return "no log"
    return " | ".join(ln.strip() for ln in log.splitlines()[-3:] if ln.strip())

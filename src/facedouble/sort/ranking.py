"""Orderings of a whole face set (pure: arrays in, index arrays out).

Every function returns indices into its inputs. They are written to stay fast and small in memory on
10,000+ faces: similarity matrices are built block by block and never held whole.
"""

from __future__ import annotations

import numpy as np

BLOCK = 1024


def nearest_neighbour_chain(features: np.ndarray, start: int = 0, k: int = 32) -> np.ndarray:
    """Greedy chain through the set: from `start`, always step to the most similar face not visited yet.

    `features` (N, D): rows whose dot product is a similarity (e.g. `metrics.histogram_features`). Each
    face's `k` most similar faces are found first (block by block); the chain uses that short list and
    falls back to a scan of the faces left only when the whole list is already visited."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = max(1, min(k, n - 1))
    neighbours = np.zeros((n, k), dtype=np.int64)
    for lo in range(0, n, BLOCK):
        sim = x[lo:lo + BLOCK] @ x.T
        rows = np.arange(sim.shape[0])
        sim[rows, lo + rows] = -np.inf  # never yourself
        if k < n - 1:
            part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        else:
            part = np.argsort(-sim, axis=1)[:, :k]
        part_sim = np.take_along_axis(sim, part, axis=1)
        order = np.argsort(-part_sim, axis=1, kind="stable")
        neighbours[lo:lo + BLOCK] = np.take_along_axis(part, order, axis=1)
    visited = np.zeros(n, dtype=bool)
    out = np.empty(n, dtype=np.int64)
    current = int(start)
    for step in range(n):
        out[step] = current
        visited[current] = True
        if step == n - 1:
            break
        nxt = -1
        for cand in neighbours[current]:
            if not visited[cand]:
                nxt = int(cand)
                break
        if nxt < 0:
            left = np.flatnonzero(~visited)
            nxt = int(left[np.argmax(x[left] @ x[current])])
        current = nxt
    return out


def dissimilarity_scores(features: np.ndarray) -> np.ndarray:
    """(N,) sum over the other faces of the Hellinger distance sqrt(1 - similarity); large = unlike the rest."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    n = len(x)
    out = np.zeros(n, dtype=np.float64)
    for lo in range(0, n, BLOCK):
        sim = x[lo:lo + BLOCK] @ x.T
        dist = np.sqrt(np.clip(1.0 - sim, 0.0, None))
        rows = np.arange(sim.shape[0])
        dist[rows, lo + rows] = 0.0
        out[lo:lo + BLOCK] = dist.sum(axis=1, dtype=np.float64)
    return out


def _nearest(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance to the nearest centroid of each row, block by block."""
    n = len(x)
    idx = np.zeros(n, dtype=np.int64)
    dist = np.zeros(n, dtype=np.float64)
    c2 = (centroids.astype(np.float64) ** 2).sum(1)
    for lo in range(0, n, BLOCK):
        xb = x[lo:lo + BLOCK].astype(np.float64)
        d2 = (xb ** 2).sum(1)[:, None] - 2 * xb @ centroids.T.astype(np.float64) + c2[None, :]
        j = np.argmin(d2, axis=1)
        idx[lo:lo + BLOCK] = j
        dist[lo:lo + BLOCK] = np.sqrt(np.maximum(d2[np.arange(len(j)), j], 0.0))
    return idx, dist


def _relabel_by_size(labels: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels renumbered 0.. by cluster size (largest first, ties by first member), and the centroids."""
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    remap = np.empty(labels.max() + 1, dtype=np.int64)
    remap[uniq[order]] = np.arange(len(uniq))
    new = remap[labels]
    cents = np.zeros((len(uniq), x.shape[1]), dtype=np.float64)
    np.add.at(cents, new, x.astype(np.float64))
    cents /= np.bincount(new, minlength=len(uniq))[:, None]
    return new, cents


def cluster_identities(embeddings: np.ndarray, threshold: float = 0.6, iterations: int = 10) -> np.ndarray:
    """Group identity embeddings into people; returns (N,) labels, 0 = the largest group.

    Deterministic: a leader pass (each face joins the nearest group whose mean is closer than `threshold`,
    else starts one), then groups whose means are closer than 0.75 * `threshold` are merged (two groups
    of one person started from different poses), then faces move to the nearest group mean closer than
    `threshold` until nothing changes."""
    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sums = np.zeros_like(x)
    counts = np.zeros(n, dtype=np.int64)
    means = np.zeros_like(x)
    k = 0
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        j = -1
        if k:
            d = np.sqrt(((means[:k] - x[i]) ** 2).sum(1))
            j = int(np.argmin(d))
            if d[j] >= threshold:
                j = -1
        if j < 0:
            j = k
            k += 1
        labels[i] = j
        sums[j] += x[i]
        counts[j] += 1
        means[j] = sums[j] / counts[j]
    labels, cents = _relabel_by_size(labels, x)
    labels = _merge_close(labels, cents, x, 0.75 * threshold)
    for _ in range(iterations):
        labels, cents = _relabel_by_size(labels, x)
        idx, dist = _nearest(x, cents)
        new = np.where(dist < threshold, idx, labels)
        if np.array_equal(new, labels):
            break
        labels = new
    labels, _ = _relabel_by_size(labels, x)
    return labels


def _merge_close(labels: np.ndarray, cents: np.ndarray, x: np.ndarray, limit: float) -> np.ndarray:
    """Merge the two groups with the closest means (size-weighted) while those are closer than `limit`.

    Groups with one face are left to the reassignment that follows, so the merge works on few groups; a
    per-row nearest cache keeps each merge O(groups)."""
    counts = np.bincount(labels, minlength=len(cents)).astype(np.float64)
    ids = np.flatnonzero(counts >= 2)
    if len(ids) < 2:
        return labels
    c = cents[ids].copy()
    w = counts[ids].copy()
    sq = (c ** 2).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] - 2 * c @ c.T + sq[None, :], 0.0))
    np.fill_diagonal(d, np.inf)
    alive = np.ones(len(ids), dtype=bool)
    row_arg = np.argmin(d, axis=1)
    row_min = d[np.arange(len(ids)), row_arg]
    owner = np.arange(len(cents))  # group -> the group it was merged into
    while True:
        a = int(np.argmin(row_min))
        if not np.isfinite(row_min[a]) or row_min[a] >= limit:
            break
        b = int(row_arg[a])
        c[a] = (c[a] * w[a] + c[b] * w[b]) / (w[a] + w[b])
        w[a] += w[b]
        owner[ids[b]] = ids[a]
        alive[b] = False
        d[b, :] = np.inf
        d[:, b] = np.inf
        row_min[b] = np.inf
        new = np.sqrt(((c - c[a]) ** 2).sum(1))
        new[a] = np.inf
        new[~alive] = np.inf
        d[a, :] = new
        d[:, a] = new
        for r in np.flatnonzero(alive & ((row_arg == a) | (row_arg == b) | (new < row_min))):
            row_arg[r] = int(np.argmin(d[r]))
            row_min[r] = d[r, row_arg[r]]
        row_arg[a] = int(np.argmin(d[a]))
        row_min[a] = d[a, row_arg[a]]
    for g in range(len(owner)):  # follow merge chains to the surviving group
        root = g
        while owner[root] != root:
            root = owner[root]
        owner[g] = root
    return owner[labels]


def identity_order(embeddings: np.ndarray, labels: np.ndarray, reference: np.ndarray | None = None,
                   threshold: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Order faces person by person, and flag the reference person's faces.

    Without a reference: groups from the largest, each from its most typical face (nearest its mean) to
    its least. With one: first the faces of the reference person (closer than `threshold` to it, or in a
    group whose mean is), nearest first, then the other groups. Returns (order, is_reference_person)."""
    x = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    k = int(labels.max()) + 1
    cents = np.zeros((k, x.shape[1]))
    np.add.at(cents, labels, x)
    cents /= np.maximum(np.bincount(labels, minlength=k), 1)[:, None]
    to_mean = np.sqrt(((x - cents[labels]) ** 2).sum(1))
    if reference is None:
        member = np.zeros(n, dtype=bool)
        order = np.lexsort((np.arange(n), to_mean, labels))
        return order, member
    ref = np.asarray(reference, dtype=np.float64)
    to_ref = np.sqrt(((x - ref) ** 2).sum(1))
    group_is_ref = np.sqrt(((cents - ref) ** 2).sum(1)) < threshold
    member = (to_ref < threshold) | group_is_ref[labels]
    first = np.flatnonzero(member)
    first = first[np.lexsort((first, to_ref[first]))]
    rest = np.flatnonzero(~member)
    rest = rest[np.lexsort((rest, to_mean[rest], labels[rest]))]
    return np.concatenate([first, rest]), member


def even_quota(counts: np.ndarray, n: int) -> np.ndarray:
    """Share `n` picks among bins holding `counts` items as evenly as possible (no bin gives more than it
    has); picks left over after an even share go to bins spread evenly along the bin axis."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if n >= total:
        return counts.copy()
    lo, hi = 0, int(counts.max())
    while lo < hi:  # largest level L with sum(min(counts, L)) <= n
        mid = (lo + hi + 1) // 2
        if np.minimum(counts, mid).sum() <= n:
            lo = mid
        else:
            hi = mid - 1
    quota = np.minimum(counts, lo)
    left = n - int(quota.sum())
    if left:
        cand = np.flatnonzero(counts > lo)
        pick = ((np.arange(left) + 0.5) * len(cand) / left).astype(np.int64)
        quota[cand[pick]] += 1
    return quota


def _bins(values: np.ndarray, count: int) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-9 or count <= 1:
        return np.zeros(len(values), dtype=np.int64)
    return np.minimum(((values - lo) / (hi - lo) * count).astype(np.int64), count - 1)


def spread_select(yaw: np.ndarray, pitch: np.ndarray, quality: np.ndarray, n: int,
                  yaw_bins: int = 64, pitch_bins: int = 8) -> np.ndarray:
    """Indices of `n` faces spread evenly over yaw, then over pitch within each yaw range, taking the
    highest `quality` (e.g. sharpness) within each cell. All of them when there are `n` or fewer.
    Returned ordered by yaw (left to right)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    pitch = np.asarray(pitch, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    total = len(yaw)
    if n >= total:
        keep = np.arange(total)
    else:
        ybin = _bins(yaw, yaw_bins)
        quota = even_quota(np.bincount(ybin, minlength=yaw_bins), n)
        chosen = []
        for b in np.flatnonzero(quota):
            members = np.flatnonzero(ybin == b)
            pbin = _bins(pitch[members], pitch_bins)
            pquota = even_quota(np.bincount(pbin, minlength=pitch_bins), int(quota[b]))
            for p in np.flatnonzero(pquota):
                cell = members[pbin == p]
                best = cell[np.lexsort((cell, -quality[cell]))][: pquota[p]]
                chosen.append(best)
        keep = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    return keep[np.lexsort((keep, yaw[keep]))]

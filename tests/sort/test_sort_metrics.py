"""Pure parts of sorting: set orderings against brute force, quotas, clustering, the journal's resume."""

from __future__ import annotations

import numpy as np
import pytest

from facedouble.sort import journal, metrics, ranking


def _greedy_brute(x: np.ndarray, start: int = 0) -> list[int]:
    n = len(x)
    sim = x @ x.T
    out, seen = [start], {start}
    while len(out) < n:
        row = sim[out[-1]].copy()
        row[list(seen)] = -np.inf
        nxt = int(np.argmax(row))
        out.append(nxt)
        seen.add(nxt)
    return out


@pytest.mark.parametrize("k", [1, 3, 32])
def test_nearest_neighbour_chain_matches_brute_force(k):
    rng = np.random.default_rng(k)
    h = rng.random((150, 48)).astype(np.float32)
    h /= h.sum(1, keepdims=True)
    feats = metrics.histogram_features(np.hstack([h, h, h]))
    assert np.allclose((feats * feats).sum(1), 1.0, atol=1e-5)  # self-similarity 1
    assert list(ranking.nearest_neighbour_chain(feats, k=k)) == _greedy_brute(feats.astype(np.float64))


def test_dissimilarity_scores_match_brute_force():
    rng = np.random.default_rng(0)
    feats = rng.random((70, 12)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    sim = feats.astype(np.float64) @ feats.T
    brute = np.sqrt(np.clip(1 - sim, 0, None))
    np.fill_diagonal(brute, 0)
    assert np.allclose(ranking.dissimilarity_scores(feats), brute.sum(1), rtol=1e-4, atol=1e-3)


def test_cluster_identities_finds_people_and_joins_split_groups():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 128))
    centres *= 0.6 / np.linalg.norm(centres, axis=1, keepdims=True)  # people ~0.85 apart
    sizes = [40, 25, 10]
    emb = np.vstack([c + rng.normal(scale=0.022, size=(s, 128)) for c, s in zip(centres, sizes)])  # ~0.35 within
    perm = rng.permutation(len(emb))
    labels = ranking.cluster_identities(emb[perm], 0.6)
    truth = np.repeat([0, 1, 2], sizes)[perm]
    assert labels.max() == 2
    for t in range(3):
        assert len(set(labels[truth == t])) == 1  # one group per person, largest first
        assert labels[truth == t][0] == t
    order, member = ranking.identity_order(emb[perm], labels, reference=centres[2])
    assert set(order[:10]) == set(np.flatnonzero(truth == 2)) and member.sum() == 10


def test_even_quota_and_spread_select():
    assert list(ranking.even_quota(np.array([5, 0, 1, 9, 3]), 8)) == [2, 0, 1, 3, 2]
    assert ranking.even_quota(np.array([5, 0, 1, 9, 3]), 100).tolist() == [5, 0, 1, 9, 3]
    q = ranking.even_quota(np.array([4] * 10), 3)
    assert q.sum() == 3 and np.flatnonzero(q).tolist() == [1, 5, 8]  # spread along the axis
    rng = np.random.default_rng(1)
    yaw = np.concatenate([rng.normal(0, 3, 900), rng.uniform(-40, 40, 100)])  # mostly frontal
    pitch = rng.normal(0, 5, 1000)
    sharp = rng.random(1000)
    keep = ranking.spread_select(yaw, pitch, sharp, 100)
    assert len(keep) == len(set(keep)) == 100
    assert np.all(np.diff(yaw[keep]) >= 0)
    # rare side views are kept instead of 100 near-identical frontal ones
    assert (np.abs(yaw[keep]) > 10).sum() >= 40
    assert list(ranking.spread_select(yaw[:5], pitch[:5], sharp[:5], 10)) == list(np.argsort(yaw[:5], kind="stable"))


def test_pose_signs_and_outside_fraction():
    # a frontal template face: points of a symmetric face, then the nose moved right and down
    lm = np.zeros((68, 2), np.float32)
    lm[0], lm[16] = (40, 120), (216, 120)
    lm[36:42], lm[42:48] = (90, 110), (166, 110)
    lm[27], lm[30] = (128, 110), (128, 156)
    yaw0, pitch0 = metrics.pose(lm)
    assert abs(yaw0) < 1e-6 and abs(pitch0) < 5
    turned, down = lm.copy(), lm.copy()
    turned[30, 0] += 30
    down[30, 1] += 20
    assert metrics.pose(turned)[0] > 15 and metrics.pose(down)[1] < pitch0 - 10
    img = np.full((100, 100, 3), 128, np.uint8)
    img[:, :10] = 0
    assert metrics.outside_fraction(img) == pytest.approx(0.1)
    shift = np.array([[1.0, 0, 50], [0, 1.0, 0]])  # frame x=0 lands at face x=50: left half is outside
    assert metrics.outside_fraction(img, shift, (1000, 1000)) == pytest.approx(0.5, abs=0.01)


def test_journal_never_overwrites_and_resumes(tmp_path):
    folder = tmp_path / "aligned"
    folder.mkdir()
    for n in ("a.jpg", "b.jpg", "c.jpg"):
        (folder / n).write_text(n)
    # a swap of two names and a move to the trash
    j = journal.create(folder, "sort", [("aligned/a.jpg", "aligned/b.jpg"), ("aligned/b.jpg", "aligned/a.jpg"),
                                        ("aligned/c.jpg", "aligned_trash/c.jpg")])
    assert journal.pending(folder) is not None
    journal.apply(j)
    assert (folder / "a.jpg").read_text() == "b.jpg" and (folder / "b.jpg").read_text() == "a.jpg"
    assert (tmp_path / "aligned_trash" / "c.jpg").read_text() == "c.jpg"
    # a file in the way of the undo is never overwritten; the undo stops and resumes once it is gone
    (folder / "c.jpg").write_text("new")
    with pytest.raises(Exception, match="already exists"):
        journal.undo(journal.last(folder))
    (folder / "c.jpg").unlink()
    journal.finish_pending(folder)
    assert [(folder / n).read_text() for n in ("a.jpg", "b.jpg", "c.jpg")] == ["a.jpg", "b.jpg", "c.jpg"]
    assert journal.last(folder) is None
    # a file deleted by hand after a sort is reported by the undo; the others come back
    j = journal.create(folder, "sort", [("aligned/a.jpg", "aligned/00000_a.jpg"), ("aligned/b.jpg", "aligned/00001_b.jpg")])
    journal.apply(j)
    (folder / "00000_a.jpg").unlink()
    assert journal.undo(journal.last(folder)) == ["aligned/a.jpg"]
    assert (folder / "b.jpg").read_text() == "b.jpg"
    # a second command on the same folder waits its turn; a lock left by a dead process is taken over
    with journal.FolderLock(folder):
        (folder / journal.LOCK_NAME).write_text("1")  # pid 1 is alive
        with pytest.raises(Exception, match="is working on"):
            with journal.FolderLock(folder):
                pass
        (folder / journal.LOCK_NAME).write_text("999999999")
        with journal.FolderLock(folder):
            pass

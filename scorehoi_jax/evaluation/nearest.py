"""Exact nearest-neighbour distances at evaluation sizes, on device, with fixed shapes.

The evaluator needs, per (stage, sample), two 6000 × 6000 Chamfer searches
per part and a contact test of every body vertex (~14k) against every object
vertex (up to ~14k). Brute force is 36–190 M distances per pair: too slow on a
CPU (the old evaluator shipped aligned samples to SciPy KD-trees instead).
Here the points are grouped into small, spatially compact clusters
*once per topology* (``clusters``: balanced median splits of the rest pose /
canonical object); at run time each cluster gets its centre and radius from
the posed points, and

  lower bound  LB(A, B) = max(0, |c_A − c_B| − r_A − r_B)

bounds the distance of any point of query cluster A to any point of reference
cluster B. Each query cluster searches only its k reference clusters of
smallest LB. The result is exact for a query q whenever its distance found
there is ≤ the (k+1)-th smallest LB (no other cluster can hold a nearer point);
a pair where that fails for any query is recomputed by brute force (a
``lax.cond`` inside a sequential map, so only those pairs pay). Clusters stay
valid under any deformation (centres and radii are measured on the posed
points); compactness only sets the speed. Same values as a KD-tree.

Index arrays are [C, m] with every cluster padded to m members by repeating
one of its own members (a repeated point changes no minimum); ``first`` marks
each point's one counted occurrence, for means and counts.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from scorehoi_jax.geometry.distances import nearest_distances


@dataclasses.dataclass(frozen=True)
class Clusters:
  """A partition of N points into C clusters of m members (NumPy, static)."""
  index: np.ndarray  # [C, m] int32 point ids (padded by repetition).
  first: np.ndarray  # [C, m] bool, True on each point's single counted occurrence.

  @property
  def num_points(self) -> int:
    return int(self.first.sum())


def clusters(points, size: int = 32, num_clusters: int | None = None) -> Clusters:
  """Balanced median splits of ``points`` [N, 3] into clusters of at most ``size`` (NumPy).

  num_clusters: pad to this many clusters (copies of cluster 0) so that meshes
  of different sizes share one shape in a batch.
  """
  points = np.asarray(points, np.float64)
  groups = []

  def split(ids):
    if len(ids) <= size:
      groups.append(ids)
      return
    p = points[ids]
    axis = int(np.argmax(p.max(0) - p.min(0)))
    order = ids[np.argsort(p[:, axis], kind="stable")]
    # Split so both halves fill whole clusters where possible (few padded slots).
    n_left = size * int(np.ceil(len(ids) / size / 2))
    split(order[:n_left])
    split(order[n_left:])

  split(np.arange(len(points)))
  if num_clusters is not None:
    if num_clusters < len(groups):
      raise ValueError(f"clusters: {len(points)} points need {len(groups)} clusters of {size}, "
                       f"more than num_clusters={num_clusters}")
    groups += [groups[0]] * (num_clusters - len(groups))
  index = np.stack([np.concatenate([g, np.full(size - len(g), g[0])]) for g in groups]).astype(np.int32)
  first = np.zeros(index.shape, bool)
  seen = np.zeros(len(points), bool)
  for c, g in enumerate(groups):
    if not seen[g[0]]:  # A padding copy of a cluster counts nothing.
      first[c, :len(g)] = True
      seen[g] = True
  return Clusters(index, first)


def num_clusters_for(num_points: int, size: int = 32) -> int:
  """Clusters ``clusters`` makes for ``num_points`` points (the split fills whole clusters first)."""
  if num_points <= size:
    return 1
  n_left = size * int(np.ceil(num_points / size / 2))
  return num_clusters_for(n_left, size) + num_clusters_for(num_points - n_left, size)


def _centres(points, index):
  """Cluster centres [C, 3] and radii [C] of points [N, 3] grouped by index [C, m]."""
  p = points[index]
  c = 0.5 * (p.max(1) + p.min(1))  # Box centre: a tighter radius than the mean on elongated clusters.
  return p, c, jnp.sqrt(jnp.max(jnp.sum((p - c[:, None]) ** 2, -1), -1))


def _sq_dist_min(q, r):
  """min_j |q_i − r_j|² for q [C, m, 3], r [C, n, 3].

  Difference form, coordinates split and the candidates on the middle axis:
  the layout XLA's CPU backend vectorises best (~5× a batched GEMM of such
  small matrices, measured), and exact.
  """
  d = sum((q[:, None, :, i] - r[:, :, None, i]) ** 2 for i in range(3))  # [C, n, m]
  return jnp.min(d, 1)


def _pruned(queries, q_index, refs, r_index, k: int):
  """(distances [Cq, m], bound [Cq, m]) of the clustered search of one pair (see module docstring).

  A distance is exact where it is ≤ its bound: for query q of cluster A, every
  unsearched cluster B lies at least s_{k+1}(A) − |q − c_A| away, where
  s(A, B) = |c_A − c_B| − r_B ranks the clusters and s_{k+1} is the first left out.
  """
  q, qc, _ = _centres(queries, q_index)
  _, rc, rr = _centres(refs, r_index)
  k = min(k, r_index.shape[0])
  score = jnp.sqrt(jnp.sum((qc[:, None] - rc[None]) ** 2, -1)) - rr[None]  # [Cq, Cr]
  kk = min(k + 1, r_index.shape[0])
  neg, sel = jax.lax.top_k(-score, kk)
  cand = refs[r_index[sel[:, :k]]].reshape(q.shape[0], -1, 3) - qc[:, None]  # [Cq, k·n, 3], centred on c_A
  ql = q - qc[:, None]
  d = jnp.sqrt(_sq_dist_min(ql, cand))
  left_out = -neg[:, -1] if kk > k else jnp.full(neg.shape[:1], jnp.inf)
  return d, left_out[:, None] - jnp.sqrt(jnp.sum(ql * ql, -1))


def _brute(queries, q_index, refs):
  d, _ = nearest_distances(queries, refs, 2048)
  return d[q_index]


def _chunked(fn, xs, batch: int):
  """lax.map of fn over the leading axis, vmapped ``batch`` at a time (pairs padded with copies of the first)."""
  n = jax.tree_util.tree_leaves(xs)[0].shape[0]
  batch = max(1, min(batch, n))
  pad = (-n) % batch
  xs = jax.tree_util.tree_map(lambda a: jnp.concatenate([a, jnp.broadcast_to(a[:1], (pad,) + a.shape[1:])])
                              .reshape((-1, batch) + a.shape[1:]), xs)
  out = jax.lax.map(lambda x: jax.vmap(fn)(*x), xs)
  return jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:])[:n], out)


def _per_pair(index, lead):
  index = jnp.asarray(index)
  return jnp.broadcast_to(index, lead + index.shape[-2:]).reshape((-1,) + index.shape[-2:])


def nearest(queries, q_index, refs, r_index, ks=(8, 32), batch: int = 8):
  """Exact distances [..., Cq, m] of every (clustered) query to its nearest reference point.

  queries [..., Nq, 3], refs [..., Nr, 3] (leading dims batched: pairs);
  q_index [Cq, m], r_index [Cr, n]: the cluster indices (``Clusters.index``)
  of queries and references, shared by every pair or given per pair
  ([..., Cq, m], e.g. a different object per sample; padding rows of the
  points are never indexed).
  ks: reference clusters searched per query cluster, a cascade: the first
  pass runs over ``batch`` pairs at a time (bounds memory); a pair it does not
  prove exact is redone with the next k, then by brute force. Reduce with
  ``Clusters.first`` (each query counted once): ``cluster_mean``.
  """
  lead = queries.shape[:-2]
  qs = queries.reshape((-1,) + queries.shape[-2:])
  rs = refs.reshape((-1,) + refs.shape[-2:])
  qi, ri = _per_pair(q_index, lead), _per_pair(r_index, lead)

  def passes(a, q, b, r, level):
    if level == len(ks):
      return _brute(a, q, b)
    d, bound = _pruned(a, q, b, r, ks[level])
    return jax.lax.cond(jnp.all(d <= bound), lambda: d, lambda: passes(a, q, b, r, level + 1))

  d, bound = _chunked(lambda *a: _pruned(*a, ks[0]), (qs, qi, rs, ri), batch)
  exact = jnp.all(d <= bound, axis=(-2, -1))

  def fix(args):
    di, oki, *pair = args
    return jax.lax.cond(oki, lambda: di, lambda: passes(*pair, 1))

  d = jax.lax.map(fix, (d, exact, qs, qi, rs, ri))
  return d.reshape(lead + d.shape[1:])


def cluster_mean(values, first):
  """Mean over the clustered points of values [..., C, m] (``first`` [..., C, m]: each point once)."""
  w = jnp.asarray(first, values.dtype)
  return jnp.sum(values * w, (-2, -1)) / jnp.sum(w, (-2, -1))


def within(queries, q_index, refs, r_index, threshold: float, ks=(8, 32), near: int = 64, batch: int = 8):
  """bool [..., Nq]: queries with a reference point closer than ``threshold`` (strict), exactly.

  Only the ``near`` query clusters with the smallest lower bound to any
  reference cluster are searched (the contact test of the field: the object
  touches a small part of the body); every other query is farther than
  ``threshold`` provided the (near+1)-th bound is ≥ threshold. A query is
  decided when a point within reach was found or no unsearched reference
  cluster can hold one. Undecided pairs go through the cascade of ``ks``,
  then brute force, as in ``nearest``.
  """
  lead = queries.shape[:-2]
  nq = queries.shape[-2]
  qs = queries.reshape((-1,) + queries.shape[-2:])
  rs = refs.reshape((-1,) + refs.shape[-2:])
  ri = _per_pair(r_index, lead)
  qi = jnp.asarray(q_index)  # Shared by every pair.
  near = min(near, qi.shape[0])

  def one(q_pts, r_pts, r_idx, k):
    _, qc, qr = _centres(q_pts, qi)
    _, rc, rr = _centres(r_pts, r_idx)
    lb = jnp.maximum(jnp.sqrt(jnp.sum((qc[:, None] - rc[None]) ** 2, -1)) - qr[:, None] - rr[None], 0.0)
    kk = min(near + 1, qi.shape[0])
    neg, sel = jax.lax.top_k(-jnp.min(lb, 1), kk)
    far_ok = (-neg[-1] >= threshold) if kk > near else jnp.asarray(True)
    sub = qi[sel[:near]]
    d, bound = _pruned(q_pts, sub, r_pts, r_idx, k)
    ok = (d < threshold) | (bound >= threshold)
    hit = jnp.zeros(nq, jnp.int32).at[sub.reshape(-1)].max((d < threshold).reshape(-1).astype(jnp.int32))
    return hit > 0, far_ok & jnp.all(ok)

  def passes(a, b, c, level):
    if level == len(ks):
      return nearest_distances(a, b, 2048)[0] < threshold
    h, ok = one(a, b, c, ks[level])
    return jax.lax.cond(ok, lambda: h, lambda: passes(a, b, c, level + 1))

  hit, exact = _chunked(lambda a, b, c: one(a, b, c, ks[0]), (qs, rs, ri), batch)

  def fix(args):
    h, oki, a, b, c = args
    return jax.lax.cond(oki, lambda: h, lambda: passes(a, b, c, 1))

  hit = jax.lax.map(fix, (hit, exact, qs, rs, ri))
  return hit.reshape(lead + (nq,))

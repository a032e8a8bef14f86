"""Dense linear algebra on the device: Cholesky, triangular solves, pivoted LU (det, inverse, solve), Householder QR,
Jacobi eigenvalues and singular values.

Matrices in op_db and in models are small, so each factorization is unrolled over the matrix size with batched
tinygrad ops (the batch dims stay vectorized); nothing is read back. The pivot choice is LAPACK's (first largest
|value| of the column), so LU factors and permutations equal the CPU's. Work is done in float64 where the device
has it, which keeps float32 results at the CPU's accuracy.
"""
from __future__ import annotations

from typing import Any

import torch
from tinygrad import Tensor, dtypes
from tinygrad.dtype import DType

from tinybounty.torch_backend.autodiff import out_variant
from tinybounty.torch_backend.creation import factory_dtype
from tinybounty.torch_backend.table import aten, precise_dtype


def _eye(n: int, like: Tensor) -> Tensor:
  return Tensor.eye(n, dtype=like.dtype).expand(*like.shape[:-2], n, n)


def _col(A: Tensor, j: int) -> Tensor:
  return A[..., j:j + 1]


def _row(A: Tensor, i: int) -> Tensor:
  return A[..., i:i + 1, :]


def _mT(A: Tensor) -> Tensor:
  return A.transpose(-1, -2)


# ***** Cholesky and triangular solves *****

def cholesky_lower(A: Tensor) -> tuple[Tensor, Tensor]:
  """(L, info): A = L L^T column by column; info is 1 + the first non-positive pivot (0 if A is positive definite)."""
  n, cols = A.shape[-1], []
  info = Tensor.zeros(*A.shape[:-2], dtype=dtypes.int32)
  rows = Tensor.arange(n).reshape(n, 1)
  for j in range(n):
    c = _col(A, j) - sum((cols[k] * cols[k][..., j:j + 1, :] for k in range(j)), start=Tensor.zeros(1, 1, dtype=A.dtype))
    d = c[..., j:j + 1, :]
    info = ((info == 0) & ~(d[..., 0, 0] > 0)).where(j + 1, info)
    cols.append((rows >= j).where(c / d.sqrt(), 0))
  return (Tensor.cat(*cols, dim=-1) if cols else A), info


def solve_triangular(A: Tensor, B: Tensor, upper: bool, unitriangular: bool = False) -> Tensor:
  """X with A X = B for triangular A (forward or back substitution, one row of X at a time)."""
  n = A.shape[-1]
  if upper: return solve_triangular(A.flip(-1).flip(-2), B.flip(-2), False, unitriangular).flip(-2)
  xs: list[Tensor] = []
  for i in range(n):
    r = _row(B, i) - sum((A[..., i:i + 1, k:k + 1] * xs[k] for k in range(i)), start=Tensor.zeros(1, 1, dtype=B.dtype))
    xs.append(r if unitriangular else r / A[..., i:i + 1, i:i + 1])
  return Tensor.cat(*xs, dim=-2) if xs else B


def _broadcast(A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
  batch = _bshape(A.shape[:-2], B.shape[:-2])
  return A.expand(*batch, *A.shape[-2:]), B.expand(*batch, *B.shape[-2:])


def _bshape(a: tuple, b: tuple) -> tuple:
  n = max(len(a), len(b))
  a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
  return tuple(y if x == 1 else x for x, y in zip(a, b))


def _triangular(A: Tensor, B: Tensor, upper: bool, left: bool, unitriangular: bool) -> Tensor:
  dt = B.dtype
  A, B = _broadcast(A.cast(precise_dtype()), B.cast(precise_dtype()))
  if not left: return _mT(solve_triangular(_mT(A), _mT(B), not upper, unitriangular)).cast(dt)
  return solve_triangular(A, B, upper, unitriangular).cast(dt)


@aten("linalg_solve_triangular")
def linalg_solve_triangular(self: Tensor, B: Tensor, *, upper: bool, left: bool = True, unitriangular: bool = False) -> Tensor:
  return _triangular(self, B, upper, left, unitriangular)


@aten("triangular_solve")
def triangular_solve(self: Tensor, A: Tensor, upper: bool = True, transpose: bool = False, unitriangular: bool = False) -> tuple[Tensor, Tensor]:
  tri = (A.triu() if upper else A.tril())
  X = _triangular(_mT(tri) if transpose else tri, self, upper != transpose, True, unitriangular)
  return X, A.expand(*_bshape(A.shape[:-2], self.shape[:-2]), *A.shape[-2:]).contiguous()


@aten("linalg_cholesky_ex")
def linalg_cholesky_ex(self: Tensor, *, upper: bool = False, check_errors: bool = False) -> tuple[Tensor, Tensor]:
  L, info = cholesky_lower(self.cast(precise_dtype()))
  L = L.cast(self.dtype)
  return (_mT(L) if upper else L), info


@aten("cholesky")
def cholesky(self: Tensor, upper: bool = False) -> Tensor: return linalg_cholesky_ex(self, upper=upper)[0]


@aten("cholesky_inverse")
def cholesky_inverse(self: Tensor, upper: bool = False) -> Tensor:
  """inv(A) from A's Cholesky factor: inv(L)^T inv(L) (upper: inv(U) inv(U)^T)."""
  L = (_mT(self.triu()) if upper else self.tril()).cast(precise_dtype())
  Li = solve_triangular(L, _eye(L.shape[-1], L), False)
  return (_mT(Li) @ Li).cast(self.dtype)


@aten("_cholesky_solve_helper")
def cholesky_solve_helper(self: Tensor, A: Tensor, upper: bool) -> Tensor:
  L = _mT(A.triu()) if upper else A.tril()
  L, B = _broadcast(L.cast(precise_dtype()), self.cast(precise_dtype()))
  return solve_triangular(_mT(L), solve_triangular(L, B, False), True).cast(self.dtype)


# ***** LU with partial pivoting *****

def lu_factor(A: Tensor) -> tuple[Tensor, Tensor]:
  """(LU, pivots): LAPACK getrf's packed factors (unit L below the diagonal, U on and above) and 1-based int32 pivots."""
  m, n = A.shape[-2:]
  rows, pivots = Tensor.arange(m).reshape(m, 1), []
  for k in range(min(m, n)):
    col = A[..., :, k:k + 1]
    p = (rows >= k).where(col.abs(), -1).argmax(-2, keepdim=True)        # (..., 1, 1): first largest |a_ik|, i >= k
    pivots.append(p[..., 0, 0] + 1)
    row_k, row_p = _row(A, k), A.gather(-2, p.expand(*A.shape[:-2], 1, n))
    A = (rows == k).where(row_p, (rows == p).where(row_k, A))
    piv = A[..., k:k + 1, k:k + 1]
    l = (rows > k).where((piv != 0).where(_col(A, k) / piv, _col(A, k)), 0)
    upd = (Tensor.arange(n) > k).reshape(1, n).where(l * _row(A, k), 0)
    A = (rows > k).where(A - upd, A)
    A = (rows > k).where((Tensor.arange(n) == k).reshape(1, n).where(l, A), A)
  piv = Tensor.stack(*pivots, dim=-1).cast(dtypes.int32) if pivots else Tensor.zeros(*A.shape[:-2], 0, dtype=dtypes.int32)
  return A, piv


def _perm(pivots: Tensor, m: int) -> Tensor:
  """The row permutation the pivots apply, as indices: row i of P A is row perm[i] of A."""
  perm = Tensor.arange(m).expand(*pivots.shape[:-1], m)
  idx = Tensor.arange(m)
  for k in range(pivots.shape[-1]):
    p = (pivots[..., k:k + 1] - 1).cast(perm.dtype)
    pk, pp = perm[..., k:k + 1], perm.gather(-1, p)
    perm = (idx == k).where(pp, (idx == p).where(pk, perm))
  return perm


def _unpack(LU: Tensor) -> tuple[Tensor, Tensor]:
  m, n = LU.shape[-2:]
  k = min(m, n)
  L = LU[..., :, :k].tril(-1) + Tensor.eye(m, k, dtype=LU.dtype)
  return L, LU[..., :k, :].triu()


def _perm_matrix(pivots: Tensor, m: int, dtype: DType) -> Tensor:
  """P with A = P L U (torch's convention: P^T A = L U)."""
  perm = _perm(pivots, m)
  return (perm.unsqueeze(-2) == Tensor.arange(m).reshape(m, 1)).cast(dtype)


def _lu_solve(LU: Tensor, pivots: Tensor, B: Tensor) -> Tensor:
  """X with A X = B from A's packed LU (B already broadcast)."""
  perm = _perm(pivots, LU.shape[-1])
  PB = B.gather(-2, perm.unsqueeze(-1).expand(*perm.shape, B.shape[-1]))
  return solve_triangular(LU, solve_triangular(LU, PB, False, True), True)


def _factor(A: Tensor) -> tuple[Tensor, Tensor]:
  return lu_factor(A.cast(precise_dtype()))


def _info(LU: Tensor) -> Tensor:
  """getrf's info: 1 + the first zero on U's diagonal, 0 when there is none."""
  d = LU.diagonal(dim1=-2, dim2=-1) if LU.ndim and min(LU.shape[-2:]) else Tensor.ones(*LU.shape[:-2], 0)
  k = d.shape[-1]
  first = (d == 0).where(Tensor.arange(k) + 1, k + 1).min(-1) if k else Tensor.full(LU.shape[:-2], 1)
  return (first > k).where(0, first).cast(dtypes.int32)


@aten("linalg_lu_factor_ex")
def linalg_lu_factor_ex(A: Tensor, *, pivot: bool = True, check_errors: bool = False) -> tuple[Tensor, Tensor, Tensor]:
  if not pivot: raise NotImplementedError("tiny: aten::linalg_lu_factor_ex (overload 'default') with pivot=False is not implemented")
  LU, piv = _factor(A)
  return LU.cast(A.dtype), piv, _info(LU)


@aten("linalg_lu")
def linalg_lu(A: Tensor, *, pivot: bool = True) -> tuple[Tensor, Tensor, Tensor]:
  if not pivot: raise NotImplementedError("tiny: aten::linalg_lu (overload 'default') with pivot=False is not implemented")
  LU, piv = _factor(A)
  L, U = _unpack(LU)
  return _perm_matrix(piv, A.shape[-2], A.dtype), L.cast(A.dtype), U.cast(A.dtype)


@aten("lu_unpack")
def lu_unpack(LU_data: Tensor, LU_pivots: Tensor, unpack_data: bool = True, unpack_pivots: bool = True) -> tuple[Tensor, Tensor, Tensor]:
  m = LU_data.shape[-2]
  L, U = _unpack(LU_data) if unpack_data else (Tensor.empty(0, dtype=LU_data.dtype), Tensor.empty(0, dtype=LU_data.dtype))
  P = _perm_matrix(LU_pivots, m, LU_data.dtype) if unpack_pivots else Tensor.empty(0, dtype=LU_data.dtype)
  return P, L, U


def _lu_solve_adjoint(LU: Tensor, pivots: Tensor, B: Tensor) -> Tensor:
  """X with A^T X = B: U^T L^T P^T X = B."""
  y = solve_triangular(_mT(LU), solve_triangular(_mT(LU), B, False), True, True)
  return _perm_matrix(pivots, LU.shape[-1], y.dtype) @ y


@aten("linalg_lu_solve")
def linalg_lu_solve(LU: Tensor, pivots: Tensor, B: Tensor, *, left: bool = True, adjoint: bool = False) -> Tensor:
  batch = _bshape(LU.shape[:-2], B.shape[:-2])
  work = LU.cast(precise_dtype()).expand(*batch, *LU.shape[-2:])
  piv, B = pivots.expand(*batch, pivots.shape[-1]), B.cast(work.dtype).expand(*batch, *B.shape[-2:])
  solve = _lu_solve_adjoint if adjoint == left else _lu_solve          # X A = B is A^T X^T = B^T
  return (solve(work, piv, B) if left else _mT(solve(work, piv, _mT(B)))).cast(LU.dtype)


# det and slogdet are torch-level kernels: like the CPU, they factor A^T when A is contiguous (det(A^T) = det(A)), and
# PyTorch's backward formulas read that choice back from A's strides when they reuse the returned LU.

def _det_parts(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
  """(diag(U), permutation sign, LU, pivots) of A's LU factorization (of A^T if A is contiguous)."""
  LU, pivots, _ = torch.ops.aten.linalg_lu_factor_ex(A.mT if A.is_contiguous() else A)
  n = A.shape[-1]
  swaps = (pivots != torch.arange(1, n + 1, device=A.device, dtype=torch.int32)).sum(-1)
  return LU.diagonal(dim1=-2, dim2=-1), 1 - 2 * (swaps % 2).to(A.dtype), LU, pivots


def _det(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
  d, sign, LU, pivots = _det_parts(A)
  return sign * d.prod(-1), LU, pivots


def _slogdet(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
  d, sign, LU, pivots = _det_parts(A)
  return sign * d.sign().prod(-1), d.abs().log().sum(-1), LU, pivots


KERNELS = {"_linalg_det": _det, "_linalg_det.result": out_variant(_det, ("result", "LU", "pivots")), "_linalg_slogdet": _slogdet,
           "_linalg_slogdet.sign": out_variant(_slogdet, ("sign", "logabsdet", "LU", "pivots"))}


@aten("linalg_inv_ex")
def linalg_inv_ex(A: Tensor, *, check_errors: bool = False) -> tuple[Tensor, Tensor]:
  LU, piv = _factor(A)
  return _lu_solve(LU, piv, _eye(A.shape[-1], LU)).cast(A.dtype), _info(LU)


@aten("_linalg_solve_ex")
def linalg_solve_ex(A: Tensor, B: Tensor, *, left: bool = True, check_errors: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
  vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
  Bm = B.unsqueeze(-1) if vector else B
  LU, piv = _factor(A)
  X = linalg_lu_solve(LU, piv, Bm, left=left)
  return (X.squeeze(-1) if vector else X).cast(A.dtype), LU.cast(A.dtype), piv, _info(LU)


@aten("eye", "eye.m")
def eye(n: int, m: int | None = None, *, dtype: Any = None, layout: Any = None, device: Any = None, pin_memory: Any = None) -> Tensor:
  return Tensor.eye(n, n if m is None else m, dtype=factory_dtype(dtype))


# ***** Householder QR (LAPACK geqrf's reflectors and signs) *****

def householder(A: Tensor) -> tuple[Tensor, Tensor]:
  """(packed, tau) like geqrf: R on and above the diagonal, reflector k's v (v_k = 1 implied) below it."""
  m, n = A.shape[-2:]
  rows, taus = Tensor.arange(m).reshape(m, 1), []
  for k in range(min(m, n)):
    x = _col(A, k)
    alpha = x[..., k:k + 1, :]
    xnorm = (rows > k).where(x, 0).square().sum(-2, keepdim=True).sqrt()
    beta = -(alpha >= 0).where(1, -1) * (alpha.square() + xnorm.square()).sqrt()
    trivial = xnorm == 0
    tau = trivial.where(0, (beta - alpha) / beta)
    v = (rows == k).where(1, (rows > k).where(x / trivial.where(1, alpha - beta), 0))
    A = A - (Tensor.arange(n) > k).reshape(1, n).where(tau * v * (v * A).sum(-2, keepdim=True), 0)
    A = (Tensor.arange(n) == k).reshape(1, n).where((rows == k).where(trivial.where(alpha, beta), (rows > k).where(v, A)), A)
    taus.append(tau[..., 0, 0])
  return A, (Tensor.stack(*taus, dim=-1) if taus else Tensor.zeros(*A.shape[:-2], 0, dtype=A.dtype))


def householder_q(packed: Tensor, tau: Tensor, cols: int) -> Tensor:
  """The first `cols` columns of Q = H_1 ... H_k from geqrf's packed reflectors."""
  m = packed.shape[-2]
  rows = Tensor.arange(m).reshape(m, 1)
  Q = Tensor.eye(m, cols, dtype=packed.dtype).expand(*packed.shape[:-2], m, cols)
  for k in reversed(range(tau.shape[-1])):
    v = (rows == k).where(1, (rows > k).where(_col(packed, k), 0))
    Q = Q - tau[..., k:k + 1].unsqueeze(-1) * v * (v * Q).sum(-2, keepdim=True)
  return Q


@aten("geqrf")
def geqrf(self: Tensor) -> tuple[Tensor, Tensor]:
  packed, tau = householder(self.cast(precise_dtype()))
  return packed.cast(self.dtype), tau.cast(self.dtype)


@aten("linalg_householder_product")
def linalg_householder_product(input: Tensor, tau: Tensor) -> Tensor:
  return householder_q(input.cast(precise_dtype()), tau.cast(precise_dtype()), input.shape[-1]).cast(input.dtype)


@aten("ormqr")
def ormqr(self: Tensor, input2: Tensor, input3: Tensor, left: bool = True, transpose: bool = False) -> Tensor:
  Q = householder_q(self.cast(precise_dtype()), input2.cast(precise_dtype()), self.shape[-2])
  Q, C = _mT(Q) if transpose else Q, input3.cast(precise_dtype())
  return (Q @ C if left else C @ Q).cast(input3.dtype)


@aten("linalg_qr")
def linalg_qr(A: Tensor, mode: str = "reduced") -> tuple[Tensor, Tensor]:
  m, n = A.shape[-2:]
  packed, tau = householder(A.cast(precise_dtype()))
  k = m if mode == "complete" else min(m, n)
  R = packed[..., :k, :].triu().cast(A.dtype)
  if mode == "r": return Tensor.empty(0, dtype=A.dtype), R
  return householder_q(packed, tau, k).cast(A.dtype), R


# ***** singular values and symmetric eigenvalues: parallel cyclic Jacobi with a fixed number of sweeps *****

SWEEPS = 10   # cyclic Jacobi converges quadratically: 10 sweeps reach float64 rounding for the sizes used here


def _rounds(n: int) -> list[tuple[Tensor, Tensor]]:
  """Round-robin pairings of 0..n-1 (each pair once per sweep, n // 2 disjoint pairs per round) as one-hot (n, k)
  matrices P, Q: column j of P and Q selects the j-th pair (p < q)."""
  m = n + n % 2
  players, rounds = list(range(m)), []
  for _ in range(m - 1):
    pairs = sorted((min(a, b), max(a, b)) for a, b in ((players[i], players[m - 1 - i]) for i in range(m // 2)) if max(a, b) < n)
    onehot = lambda idx: Tensor([[float(i == j) for j in idx] for i in range(n)])  # noqa: E731
    rounds.append((onehot([p for p, _ in pairs]), onehot([q for _, q in pairs])))
    players = [players[0], players[-1]] + players[1:-1]
  return rounds


def _rotation(P: Tensor, Q: Tensor, c: Tensor, s: Tensor) -> Tensor:
  """J = the identity rotated by (c, s) in each (p, q) plane: J[p,p] = J[q,q] = c, J[p,q] = s, J[q,p] = -s."""
  def outer(X: Tensor, v: Tensor, Y: Tensor) -> Tensor: return (X * v.unsqueeze(-2)) @ Y.T
  n = P.shape[0]
  return Tensor.eye(n, dtype=c.dtype) + outer(P, c - 1, P) + outer(Q, c - 1, Q) + outer(P, s, Q) - outer(Q, s, P)


def _jacobi_angle(app: Tensor, aqq: Tensor, apq: Tensor) -> tuple[Tensor, Tensor]:
  """(c, s) of the rotation that zeroes apq: t = sign(theta) / (|theta| + sqrt(theta^2 + 1)), theta = (aqq - app) / 2 apq."""
  still = apq.abs() > 1e-300
  theta = (aqq - app) / still.where(2 * apq, 1)
  t = still.where((theta >= 0).where(1, -1) / (theta.abs() + (theta.square() + 1).sqrt()), 0)
  c = 1 / (t.square() + 1).sqrt()
  return c, c * t


def _pair_entries(M: Tensor, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
  """(M[p,p], M[q,q], M[p,q]) for every pair of the round."""
  d = M.diagonal(dim1=-2, dim2=-1).unsqueeze(-2)
  return (d @ P).squeeze(-2), (d @ Q).squeeze(-2), ((M @ Q) * P).sum(-2)


def _jacobi_svd(A: Tensor) -> tuple[Tensor, Tensor, Tensor]:
  """(U, S, V) of a tall A (m >= n) by one-sided Jacobi: rotate column pairs until all are orthogonal. S descending."""
  n = A.shape[-1]
  V, rounds = _eye(n, A), _rounds(n)
  for _ in range(SWEEPS if n > 1 else 0):
    for P, Q in rounds:
      P, Q = P.cast(A.dtype), Q.cast(A.dtype)
      c, s = _jacobi_angle(*_pair_entries(_mT(A) @ A, P, Q))
      J = _rotation(P, Q, c, s)
      A, V = (A @ J).realize(), (V @ J).realize()
  S = A.square().sum(-2).sqrt()
  order = S.sort(-1, descending=True)[1] if n > 1 else Tensor.zeros(*S.shape, dtype=dtypes.int32)
  S = S.gather(-1, order)
  take = order.unsqueeze(-2)
  U, V = A.gather(-1, take.expand(*A.shape)) / (S.unsqueeze(-2) + (S.unsqueeze(-2) == 0)), V.gather(-1, take.expand(*V.shape))
  return U, S, V


def jacobi_eigh(A: Tensor) -> tuple[Tensor, Tensor]:
  """(ascending eigenvalues, eigenvectors) of a symmetric A: rotate off-diagonal pairs to zero, round after round."""
  n = A.shape[-1]
  V, rounds = _eye(n, A), _rounds(n)
  for _ in range(SWEEPS if n > 1 else 0):
    for P, Q in rounds:
      P, Q = P.cast(A.dtype), Q.cast(A.dtype)
      J = _rotation(P, Q, *_jacobi_angle(*_pair_entries(A, P, Q)))
      A, V = (_mT(J) @ A @ J).realize(), (V @ J).realize()
  w = A.diagonal(dim1=-2, dim2=-1) if n else A.sum(-1)
  order = w.sort(-1)[1] if n > 1 else Tensor.zeros(*w.shape, dtype=dtypes.int32)
  return w.gather(-1, order), V.gather(-1, order.unsqueeze(-2).expand(*V.shape))


@aten("_linalg_eigh")
def linalg_eigh(A: Tensor, UPLO: str = "L", compute_v: bool = True) -> tuple[Tensor, Tensor]:
  """Symmetric eigendecomposition from the UPLO triangle; eigenvectors are unique only up to sign (as on every backend)."""
  tri = A.tril() if UPLO == "L" else A.triu()
  work = (tri + _mT(tri) - tri * _eye(A.shape[-1], A)).cast(precise_dtype())
  w, V = jacobi_eigh(work)
  return w.cast(A.dtype), V.cast(A.dtype) if compute_v else Tensor.empty(0, dtype=A.dtype)


def _orthonormal_basis(U: Tensor, cols: int) -> Tensor:
  """The first `cols` columns of an orthogonal matrix extending U's orthonormal columns (U's zero columns, from zero
  singular values, become vectors orthogonal to the rest): Householder QR of U, column signs set back to U's."""
  packed, tau = householder(U)
  Q = householder_q(packed, tau, cols)
  k = U.shape[-1]
  r = packed.diagonal(dim1=-2, dim2=-1)[..., :k] if k else Tensor.ones(*U.shape[:-2], 0, dtype=U.dtype)
  sign = (r < 0).where(-1, 1).cast(U.dtype).unsqueeze(-2)
  return Q[..., :k] * sign if cols == k else Q[..., :k].mul(sign).cat(Q[..., k:], dim=-1)


@aten("_linalg_svd")
def linalg_svd(A: Tensor, full_matrices: bool = False, compute_uv: bool = True, *, driver: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
  """Singular values are unique; U and V only up to the signs of their columns (as on every backend)."""
  m, n = A.shape[-2:]
  wide = m < n
  work = A.cast(precise_dtype())
  U, S, V = _jacobi_svd(_mT(work) if wide else work)
  if not compute_uv: return Tensor.empty(0, dtype=A.dtype), S.cast(A.dtype), Tensor.empty(0, dtype=A.dtype)
  U = _orthonormal_basis(U, max(m, n) if full_matrices else min(m, n))
  if wide: U, V = V, U
  return U.cast(A.dtype), S.cast(A.dtype), _mT(V).cast(A.dtype)


@aten("linalg_lstsq")
def linalg_lstsq(self: Tensor, b: Tensor, rcond: float | None = None, *, driver: str | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
  """Minimum-norm least squares through the SVD (singular values below rcond * max cut), which every LAPACK driver
  solves for the full-rank inputs where they agree; residuals when m > n, rank and singular values as the driver reports."""
  m, n = self.shape[-2:]
  vector = b.ndim == self.ndim - 1
  B = (b.unsqueeze(-1) if vector else b).cast(precise_dtype())
  A = self.cast(precise_dtype())
  A, B = _broadcast(A, B)
  wide = m < n
  U, S, V = _jacobi_svd(_mT(A) if wide else A)
  if wide: U, V = V, U
  eps = torch.finfo(torch.float64 if self.dtype == dtypes.float64 else torch.float32).eps
  cut = rcond if rcond is not None and rcond > 0 else eps * max(m, n)
  keep = S > cut * S.max(-1, keepdim=True) if S.shape[-1] else S > 0
  X = V @ (keep.where(1 / keep.where(S, 1), 0).unsqueeze(-1) * (_mT(U) @ B))
  empty = Tensor.empty(0, dtype=self.dtype)
  residuals = (A @ X - B).square().sum(-2).cast(self.dtype) if m > n else empty
  rank = keep.cast(dtypes.int64).sum(-1) if driver in (None, "gelsy", "gelsd", "gelss") else Tensor.empty(0, dtype=dtypes.int64)
  svals = S.cast(self.dtype) if driver in ("gelsd", "gelss") else empty
  X = X.cast(self.dtype)
  return (X.squeeze(-1) if vector else X), (residuals.squeeze(-1) if vector and m > n else residuals), rank, svals


@aten("linalg_matrix_exp")
def linalg_matrix_exp(self: Tensor) -> Tensor:
  """exp(A) by scaling and squaring: Taylor to degree 18 on A / 2^s (|A / 2^s|_1 <= 1/2), then s squarings, with s
  chosen per matrix on the device."""
  A = self.cast(precise_dtype())
  n = A.shape[-1]
  if n == 0: return self
  norm = A.abs().sum(-2).max(-1).reshape(*A.shape[:-2], 1, 1)
  s = (norm.maximum(1e-300).log2().ceil() + 1).maximum(0).minimum(40)
  X = A / s.exp2()
  term, total = _eye(n, A), _eye(n, A)
  for k in range(1, 19):
    term = (term @ X) / k
    total = total + term
  for i in range(40):
    total = (s > i).where(total @ total, total)
    if i % 8 == 7: total = total.realize()
  return total.cast(self.dtype)

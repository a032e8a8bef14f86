"""Special functions on the device: gamma family, Hurwitz zeta, error-function inverses, Bessel functions, incomplete
gamma, nextafter and the orthogonal polynomials.

Each is a fixed-length series, asymptotic expansion or continued fraction chosen by range, evaluated elementwise in
float64 where the device has it (`precise_dtype`) and cast back, so float32 results carry the CPU's accuracy. The
polynomials take the degree from a tensor: their recurrence runs to the largest degree present, read back as one
counted size sync (`stats()['size_syncs']`).
"""
from __future__ import annotations

import math
from typing import Any, Callable

from tinygrad import Tensor, dtypes

from tinybounty.torch_backend.stats import size_sync
from tinybounty.torch_backend.table import aten, float_dtype, precise_dtype, result_dtype

EULER = 0.5772156649015329
LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
           12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7)
BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)   # B_2, B_4, ..., B_16


def _unary(*names: str) -> Callable[[Callable[[Tensor], Tensor]], Callable[[Tensor], Tensor]]:
  """Register fn(x in precise dtype) -> value for float x (ints promote to the default float)."""
  def deco(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def impl(self: Tensor) -> Tensor: return fn(self.cast(precise_dtype())).cast(float_dtype(self.dtype))
    aten(*names)(impl)
    return fn
  return deco


def _binary(*names: str) -> Callable[[Callable[[Tensor, Tensor], Tensor]], Callable[[Tensor, Tensor], Tensor]]:
  def deco(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    def impl(self: Any, other: Any) -> Tensor:
      dt, like = float_dtype(result_dtype(self, other)), self if isinstance(self, Tensor) else other
      a, b = (v.cast(precise_dtype()) if isinstance(v, Tensor) else like.const_like(v).cast(precise_dtype()) for v in (self, other))
      return fn(a, b).cast(dt)
    aten(*names)(impl)
    return fn
  return deco


def _is_int(x: Tensor) -> Tensor: return x == x.floor()


def _sinpi(x: Tensor) -> Tensor:
  r = x - 2 * (x / 2).floor()                                # sin(pi x) with x reduced to [0, 2) first
  return _is_int(x).where(0, (math.pi * r).sin())


# ***** gamma family *****

def _lgamma_pos(x: Tensor) -> Tensor:
  """log Gamma(x) for x >= 0.5 (Lanczos, g = 7)."""
  z = x - 1
  a = sum((c / (z + i) for i, c in enumerate(LANCZOS[1:], 1)), start=z.const_like(LANCZOS[0]))
  t = z + 7.5
  return 0.5 * math.log(2 * math.pi) + (z + 0.5) * t.log() - t + a.log()


@_unary("lgamma")
def lgamma(x: Tensor) -> Tensor:
  refl = math.log(math.pi) - _sinpi(x).abs().log() - _lgamma_pos((1 - x).maximum(0.5))
  out = (x >= 0.5).where(_lgamma_pos(x.maximum(0.5)), refl)
  return ((x <= 0) & _is_int(x)).where(float("inf"), out)


def _digamma_pos(x: Tensor) -> Tensor:
  """psi(x) for x >= 0.5: recur up to x >= 6, then the asymptotic series."""
  acc = x.zeros_like()
  for _ in range(6):
    acc, x = (x < 6).where(acc - 1 / x, acc), (x < 6).where(x + 1, x)
  inv2 = 1 / (x * x)
  tail = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
  return acc + x.log() - 0.5 / x - tail


@_unary("digamma", "special_digamma", "special_psi")
def digamma(x: Tensor) -> Tensor:
  refl = _digamma_pos((1 - x).maximum(0.5)) - math.pi / (math.pi * (x - x.floor())).tan()
  out = (x >= 0.5).where(_digamma_pos(x.maximum(0.5)), refl)
  return (x == 0).where(float("-inf"), ((x < 0) & _is_int(x)).where(float("nan"), out))


def _ipow(b: Tensor, s: Tensor) -> Tensor:
  """b ** -s for any sign of b where s is an integer (odd s flips the sign of a negative base)."""
  mag = (-s * b.abs().log()).exp()
  odd = (s - 2 * (s / 2).floor()) == 1
  return ((b < 0) & odd).where(-mag, mag)


def hurwitz_zeta(s: Tensor, q: Tensor) -> Tensor:
  """sum_k (q + k)^-s by Euler-Maclaurin: 12 terms, then the integral, half term and Bernoulli corrections."""
  n = 12
  total = sum((_ipow(q + k, s) for k in range(n)), start=s.zeros_like())
  a = q + n
  total = total + (a.log() * (1 - s)).exp() / (s - 1) + 0.5 * (-s * a.log()).exp()
  fac, rising, apow = 1.0, s, (-(s + 1) * a.log()).exp()         # rising: s (s+1) ... (s+2j-2); apow: a^(-s-2j+1)
  for j, b in enumerate(BERNOULLI, 1):
    fac *= (2 * j - 1) * (2 * j)
    total = total + b / fac * rising * apow
    rising, apow = rising * (s + 2 * j - 1) * (s + 2 * j), apow / (a * a)
  bad_q = (q <= 0) & ~_is_int(s)
  total = ((q <= 0) & _is_int(q)).where(float("inf"), bad_q.where(float("nan"), total))
  return (s == 1).where(float("inf"), (s < 1).where(float("nan"), total))


@_binary("special_zeta", "special_zeta.self_scalar", "special_zeta.other_scalar")
def zeta(x: Tensor, q: Tensor) -> Tensor: return hurwitz_zeta(x, q)


@aten("polygamma")
def polygamma(n: int, self: Tensor) -> Tensor:
  """psi^(n)(x) = (-1)^(n+1) n! zeta(n+1, x); n = 0 is digamma."""
  x = self.cast(precise_dtype())
  out = digamma(x) if n == 0 else (-1) ** (n + 1) * math.factorial(n) * hurwitz_zeta(x.const_like(n + 1), x)
  return out.cast(float_dtype(self.dtype))


# ***** error function family *****

def _erf_series(x: Tensor) -> Tensor:
  """erf by its Taylor series (accurate in float64 for |x| <= 2.5)."""
  term, total, x2 = x, x, x * x
  for k in range(1, 45):
    term = -term * x2 / k
    total = total + term / (2 * k + 1)
  return 2 / math.sqrt(math.pi) * total


def _erfcx_cf(x: Tensor) -> Tensor:
  """exp(x^2) erfc(x) for x >= 2.5 by its continued fraction (evaluated from a fixed depth upwards)."""
  f = x
  for k in range(80, 0, -1): f = x + (k / 2) / f
  return 1 / (math.sqrt(math.pi) * f)


def erfc_pos(x: Tensor) -> Tensor:
  """erfc(x) for x >= 0 with full relative accuracy."""
  return (x < 2.5).where(1 - _erf_series(x.minimum(2.5)), (-x * x).exp() * _erfcx_cf(x.maximum(2.5)))


def erfcx(x: Tensor) -> Tensor:
  ax = x.abs()
  pos = (ax < 2.5).where((ax * ax).exp() * (1 - _erf_series(ax.minimum(2.5))), _erfcx_cf(ax.maximum(2.5)))
  return (x >= 0).where(pos, 2 * (x * x).exp() - pos)


@_unary("special_erfcx")
def special_erfcx(x: Tensor) -> Tensor: return erfcx(x)


def _erfinv(y: Tensor, one_minus: Tensor) -> Tensor:
  """erfinv(y) for y in [0, 1]; `one_minus` is 1 - y, given separately so the tails keep their precision."""
  w = -(one_minus * (2 - one_minus)).log()
  a = w - 2.5
  p_lo = a.const_like(2.81022636e-08)
  for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941):
    p_lo = c + p_lo * a
  b = w.sqrt() - 3
  p_hi = b.const_like(-0.000200214257)
  for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682):
    p_hi = c + p_hi * b
  x = (w < 5).where(p_lo, p_hi) * y
  for _ in range(3):                                          # Newton on erfc(x) = 1 - y
    x = x + (erfc_pos(x) - one_minus) / (2 / math.sqrt(math.pi) * (-x * x).exp())
  return (one_minus == 0).where(float("inf"), x)


def erfinv(y: Tensor) -> Tensor:
  x = _erfinv(y.abs(), 1 - y.abs())
  return (y.abs() > 1).where(float("nan"), (y < 0).where(-x, x))


@_unary("erfinv")
def erfinv_(y: Tensor) -> Tensor: return erfinv(y)


@_unary("special_ndtri")
def ndtri(p: Tensor) -> Tensor:
  """sqrt(2) erfinv(2p - 1), with 1 - |2p - 1| formed from p directly (exact in float64) for the tails."""
  y = 2 * p - 1
  x = _erfinv(y.abs(), (p < 0.5).where(2 * p, 2 - 2 * p))
  out = math.sqrt(2) * (y < 0).where(-x, x)
  return ((p < 0) | (p > 1)).where(float("nan"), out)


@_unary("special_log_ndtr")
def log_ndtr(x: Tensor) -> Tensor:
  t = -x / math.sqrt(2)
  small = erfc_pos((-t).maximum(0)) / 2                      # 1 - Phi(x) for x > 0
  log1p = (small < 1e-4).where(-small - small * small / 2 - small * small * small / 3, (1 - small).log())
  return (t > 0).where((erfcx(t.maximum(0)) / 2).log() - t * t, log1p)


# ***** Bessel functions *****

def _asym_terms(nu: int, x: Tensor, n: int) -> list[Tensor]:
  """a_k(nu) / x^k for k < n: the terms of the large-x expansions of I, K, J and Y."""
  terms, t = [x.ones_like()], x.ones_like()
  for k in range(1, n):
    t = t * (4 * nu * nu - (2 * k - 1) ** 2) / (k * 8 * x)
    terms.append(t)
  return terms


def _series(x: Tensor, nu: int, sign: int = 1, n: int = 60) -> Tensor:
  """sum_k sign^k (x^2/4)^k / (k! (k+nu)!) (the power series of I_nu (sign +1) and J_nu (sign -1) without (x/2)^nu)."""
  q, term = sign * x * x / 4, x.const_like(1 / math.factorial(nu))
  total = term
  for k in range(1, n):
    term = term * q / (k * (k + nu))
    total = total + term
  return total


def bessel_i(nu: int, x: Tensor, scaled: bool) -> Tensor:
  """I_nu(x) (nu = 0, 1), times exp(-|x|) if scaled."""
  ax = x.abs().maximum(1e-300)
  small = _series(x, nu) * (x / 2) ** nu * ((-ax).exp() if scaled else 1)
  big = sum((t * (-1) ** k for k, t in enumerate(_asym_terms(nu, ax, 20))), start=x.zeros_like()) / (2 * math.pi * ax).sqrt()
  big = big * (1 if scaled else ax.exp())
  big = (x < 0).where(big * (-1) ** nu, big)
  return (ax <= 25).where(small, big)


def bessel_k(nu: int, x: Tensor, scaled: bool) -> Tensor:
  """K_nu(x) (nu = 0, 1), times exp(x) if scaled."""
  xs = x.minimum(10).maximum(1e-300)
  q, log_half = xs * xs / 4, (xs / 2).log()
  if nu == 0:
    term, h, total = xs.ones_like(), 0.0, xs.zeros_like()
    for k in range(1, 60):
      term, h = term * q / (k * k), h + 1 / k
      total = total + term * h
    small = -(log_half + EULER) * _series(xs, 0) + total
  else:
    term, total = xs.ones_like(), xs.zeros_like()
    for k in range(60):
      psi = -2 * EULER + 2 * sum(1 / j for j in range(1, k + 1)) + 1 / (k + 1)   # psi(k+1) + psi(k+2)
      total = total + term * psi
      term = term * q / ((k + 1) * (k + 2))
    small = 1 / xs + log_half * _series(xs, 1) * xs / 2 - xs / 4 * total
  small = small * (xs.exp() if scaled else 1)
  xb = x.maximum(10)
  big = sum(_asym_terms(nu, xb, 20), start=xb.zeros_like()) * (math.pi / (2 * xb)).sqrt() * (1 if scaled else (-xb).exp())
  out = (x <= 10).where(small, big)
  return (x == 0).where(float("inf"), (x < 0).where(float("nan"), out))


def _hankel(nu: int, x: Tensor) -> tuple[Tensor, Tensor]:
  """(J_nu, Y_nu) for large x > 0 from the Hankel expansions."""
  terms = _asym_terms(nu, x, 24)
  P = sum((t * (-1) ** (k // 2) for k, t in enumerate(terms) if k % 2 == 0), start=x.zeros_like())
  Q = sum((t * (-1) ** (k // 2) for k, t in enumerate(terms) if k % 2 == 1), start=x.zeros_like())
  chi, amp = x - (nu / 2 + 0.25) * math.pi, (2 / (math.pi * x)).sqrt()
  return amp * (P * chi.cos() - Q * chi.sin()), amp * (P * chi.sin() + Q * chi.cos())


def bessel_j(nu: int, x: Tensor) -> Tensor:
  ax = x.abs()
  small = _series(x, nu, -1, 80) * (x / 2) ** nu
  big = _hankel(nu, ax.maximum(12))[0]
  big = (x < 0).where(big * (-1) ** nu, big)
  return (ax <= 12).where(small, big)


def bessel_y(nu: int, x: Tensor) -> Tensor:
  xs = x.minimum(12).maximum(1e-300)
  q, log_half = -xs * xs / 4, (xs / 2).log()
  if nu == 0:
    term, h, total = xs.ones_like(), 0.0, xs.zeros_like()
    for k in range(1, 80):
      term, h = term * q / (k * k), h + 1 / k
      total = total + term * h
    small = 2 / math.pi * ((log_half + EULER) * _series(xs, 0, -1, 80) - total)
  else:
    term, total = xs.ones_like(), xs.zeros_like()
    for k in range(80):
      psi = -2 * EULER + 2 * sum(1 / j for j in range(1, k + 1)) + 1 / (k + 1)
      total = total + term * psi
      term = term * q / ((k + 1) * (k + 2))
    small = -2 / (math.pi * xs) + 2 / math.pi * log_half * _series(xs, 1, -1, 80) * xs / 2 - xs / (2 * math.pi) * total
  out = (x <= 12).where(small, _hankel(nu, x.maximum(12))[1])
  return (x == 0).where(float("-inf"), (x < 0).where(float("nan"), out))


for _names, _fn in {("i0", "special_i0", "special_modified_bessel_i0"): lambda x: bessel_i(0, x, False),
                    ("special_i0e",): lambda x: bessel_i(0, x, True),
                    ("special_i1", "special_modified_bessel_i1"): lambda x: bessel_i(1, x, False),
                    ("special_i1e",): lambda x: bessel_i(1, x, True),
                    ("special_modified_bessel_k0",): lambda x: bessel_k(0, x, False),
                    ("special_modified_bessel_k1",): lambda x: bessel_k(1, x, False),
                    ("special_scaled_modified_bessel_k0",): lambda x: bessel_k(0, x, True),
                    ("special_scaled_modified_bessel_k1",): lambda x: bessel_k(1, x, True),
                    ("special_bessel_j0",): lambda x: bessel_j(0, x), ("special_bessel_j1",): lambda x: bessel_j(1, x),
                    ("special_bessel_y0",): lambda x: bessel_y(0, x), ("special_bessel_y1",): lambda x: bessel_y(1, x),
                    ("special_spherical_bessel_j0",): lambda x: (x == 0).where(1, x.sin() / (x == 0).where(1, x))}.items():
  _unary(*_names)(_fn)


# ***** incomplete gamma *****

CHUNK = 32


def _igamma_parts(a: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
  """(P by its series, Q by its continued fraction, which one converges: x < a + 1). Near x = a both need about
  9 sqrt(a) steps for float64 accuracy: the step count is read back from the largest finite a or x (one counted size
  sync) and run in chunks whose kernels are the same (the chunk's first index is a tensor), then realized."""
  finite = lambda t: (t.isinf() | t.isnan()).where(0, t).max()  # noqa: E731
  top = size_sync((finite(a).maximum(finite(x)).maximum(0).sqrt() * 9).ceil()) if a.numel() else 0
  log_pref = a * x.log() - x - lgamma(a)
  term = 1 / a
  total, b = term, x + 1 - a
  c, d = x.const_like(1e300), 1 / b                          # modified Lentz for the continued fraction
  h = d
  for base in range(0, 64 + top, CHUNK):
    start = Tensor([float(base)], dtype=a.dtype).reshape(())
    for j in range(1, CHUNK + 1):
      n = start + j
      term = term * x / (a + n)
      total = total + term
      an, b = -n * (n - a), b + 2
      d, c = an * d + b, b + an / c
      d, c = 1 / (d.abs() < 1e-300).where(1e-300, d), (c.abs() < 1e-300).where(1e-300, c)
      h = h * d * c
    term, total, b, c, d, h = (t.realize() for t in (term, total, b, c, d, h))
  P, Q = (log_pref.exp() * total).minimum(1), (log_pref.exp() * h).minimum(1)
  return P, Q, x < a + 1


def _igamma_domain(a: Tensor, x: Tensor, out: Tensor, at_zero: float) -> Tensor:
  out = (x == 0).where(at_zero, out)
  return ((a < 0) | (x < 0) | a.isnan() | x.isnan()).where(float("nan"), out)


@_binary("igamma", "special_gammainc")
def igamma(a: Tensor, x: Tensor) -> Tensor:
  P, Q, series = _igamma_parts(a, x)
  out = (a == 0).where((x > 0).where(1.0, float("nan")), series.where(P, 1 - Q))
  return _igamma_domain(a, x, (x == float("inf")).where(1.0, out), 0.0)


@_binary("igammac", "special_gammaincc")
def igammac(a: Tensor, x: Tensor) -> Tensor:
  P, Q, series = _igamma_parts(a, x)
  out = (a == 0).where((x > 0).where(0.0, float("nan")), series.where(1 - P, Q))
  return _igamma_domain(a, x, (x == float("inf")).where(0.0, out), 1.0)


# ***** frexp and nextafter: exponent and bit-pattern arithmetic *****

@aten("frexp.Tensor")
def frexp(self: Tensor) -> tuple[Tensor, Tensor]:
  """(mantissa in [0.5, 1), int32 exponent) with self = mantissa * 2^exponent; zeros, infs and NaNs keep exponent 0."""
  x = self.cast(precise_dtype())
  e = (x.abs().log2().floor() + 1)
  finite = (x != 0) & ~x.isinf() & ~x.isnan()
  e = finite.where(e, 0)
  m = x / e.exp2()
  e = finite.where((m.abs() >= 1).where(e + 1, (m.abs() < 0.5).where(e - 1, e)), 0)   # log2 can round across a power of two
  m = finite.where(x / e.exp2(), x)
  return m.cast(self.dtype), e.cast(dtypes.int32)

@aten("nextafter")
def nextafter(self: Tensor, other: Tensor) -> Tensor:
  dt = result_dtype(self, other)
  x, y = self.cast(dt), other.cast(dt)
  idt = {dtypes.float64: dtypes.int64, dtypes.float32: dtypes.int32, dtypes.float16: dtypes.int16, dtypes.bfloat16: dtypes.int16}[dt]
  bits = x.bitcast(idt)
  away = (y > x) == (x > 0)                                  # moving away from zero grows the magnitude's bits
  stepped = (bits + away.where(1, -1).cast(idt)).bitcast(dt)
  tiny = (y > 0).where(1, 1 - 2 ** (8 * dt.itemsize - 1)).cast(idt).bitcast(dt)   # the smallest subnormal towards y
  out = (x == 0).where(tiny, stepped)
  return (x.isnan() | y.isnan()).where(float("nan"), (x == y).where(y, out))


# ***** orthogonal polynomials: three-term recurrences up to the largest degree present *****

def _recurrence(x: Tensor, n: Tensor, p1: Tensor, step: Callable[[int, Tensor, Tensor, Tensor], Tensor]) -> Tensor:
  """P_n(x) elementwise from P_0 = 1, P_1 = p1 and P_k = step(k, x, P_{k-1}, P_{k-2}); n is truncated like the CPU's int64 cast."""
  n = n.trunc() if dtypes.is_float(n.dtype) else n.cast(x.dtype)
  top = size_sync(n.max()) if n.numel() else 1
  out = (n == 0).where(1, (n == 1).where(p1, x.zeros_like()))
  p, q = x.ones_like(), p1
  for k in range(2, top + 1):
    p, q = q, step(k, x, q, p)
    out = (n == k).where(q, out)
    if k % 64 == 0: out, p, q = out.realize(), p.realize(), q.realize()
  return (n < 0).where(0, out)


def _poly(*names: str, p1: Callable[[Tensor], Tensor], step: Callable[[int, Tensor, Tensor, Tensor], Tensor],
          arg: Callable[[Tensor], Tensor] = lambda x: x) -> None:
  def fn(x: Tensor, n: Tensor) -> Tensor:
    y = arg(x)
    return _recurrence(y, n.cast(x.dtype), p1(y), step)
  _binary(*(f"{name}{ov}" for name in names for ov in ("", ".x_scalar", ".n_scalar")))(fn)


def _cheb(k: int, x: Tensor, q: Tensor, p: Tensor) -> Tensor: return 2 * x * q - p


for _shift, _arg in (("", lambda x: x), ("shifted_", lambda x: 2 * x - 1)):
  _poly(f"special_{_shift}chebyshev_polynomial_t", p1=lambda y: y, step=_cheb, arg=_arg)
  _poly(f"special_{_shift}chebyshev_polynomial_u", p1=lambda y: 2 * y, step=_cheb, arg=_arg)
  _poly(f"special_{_shift}chebyshev_polynomial_v", p1=lambda y: 2 * y - 1, step=_cheb, arg=_arg)
  _poly(f"special_{_shift}chebyshev_polynomial_w", p1=lambda y: 2 * y + 1, step=_cheb, arg=_arg)
_poly("special_hermite_polynomial_h", p1=lambda x: 2 * x, step=lambda k, x, q, p: 2 * x * q - 2 * (k - 1) * p)
_poly("special_hermite_polynomial_he", p1=lambda x: x, step=lambda k, x, q, p: x * q - (k - 1) * p)
_poly("special_laguerre_polynomial_l", p1=lambda x: 1 - x, step=lambda k, x, q, p: ((2 * k - 1 - x) * q - (k - 1) * p) / k)
_poly("special_legendre_polynomial_p", p1=lambda x: x, step=lambda k, x, q, p: ((2 * k - 1) * x * q - (k - 1) * p) / k)

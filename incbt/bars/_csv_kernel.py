"""The Numba kernel of :mod:`incbt.bars.fastcsv` (imported on first use only:
``import numba`` is not paid by commands that never parse a large CSV)."""

# mypy: ignore-errors
import numpy as np
from numba import njit

POW10 = np.array([10.0**k for k in range(23)])  # each exactly representable
TWO53 = 1 << 53
INT64_MAX = 2**63 - 1


@njit(nogil=True, cache=True, inline="always")
def digit(b):
    return 48 <= b <= 57


@njit(nogil=True, cache=True)
def days_from_civil(y, m, d):
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@njit(nogil=True, cache=True)
def two(buf, i):
    """A two-digit number at i, or -1."""
    if i + 1 >= len(buf) or not digit(buf[i]) or not digit(buf[i + 1]):
        return -1
    return (buf[i] - 48) * 10 + (buf[i + 1] - 48)


# the largest limit for which value * 10 + 9 cannot pass int64 while value <= limit
SMALL_LIMIT = (INT64_MAX - 9) // 10


@njit(nogil=True, cache=True, inline="always")
def digits(buf, i, value, limit):
    """Append the decimal digits at ``i`` to ``value``: (value, the index after them),
    or (-1, i) where the value would pass ``limit``.

    Below ``SMALL_LIMIT`` (every number but an integer ts) the next value is computed,
    then compared: no division a digit."""
    n = len(buf)
    if limit <= SMALL_LIMIT:
        while i < n:
            d = buf[i] - 48
            if d < 0 or d > 9:
                break
            nxt = value * 10 + d
            if nxt > limit:
                return -1, i
            value = nxt
            i += 1
        return value, i
    while i < n and digit(buf[i]):
        d = buf[i] - 48
        if value > (limit - d) // 10:
            return -1, i
        value = value * 10 + d
        i += 1
    return value, i


@njit(nogil=True, cache=True, inline="always")
def signed_digits(buf, i, limit):
    """An optional minus sign, then digits: (negative, value, the index after them);
    value -1 where there is no digit, or it would pass ``limit``."""
    neg = i < len(buf) and buf[i] == 45
    if neg:
        i += 1
    s = i
    v, i = digits(buf, i, 0, limit)
    return neg, (-1 if i == s else v), i


@njit(nogil=True, cache=True)
def scan_csv_bars(buf, pos, roles, int_ts, codes, ts, floats, name_at):
    """Parse rows from ``pos``; return (rows, distinct names), or (-1, line) to decline.

    ``name_at`` (2, capacity): each distinct name's byte range, in order of
    first appearance; ``codes`` index into it.
    """
    n = len(buf)
    ncols = len(roles)
    cap = name_at.shape[1]
    slots = np.full(4 * cap, -1, np.int32)  # open addressing, load <= 1/4
    mask = len(slots) - 1
    umask = np.uint64(mask)
    names = 0
    row = 0
    i = pos
    days_in = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    last = -1  # the code of the line before's name
    date_at = -1  # where the last date parsed starts (its 10 bytes), and its day
    date_day = 0
    while i < n:
        if row >= len(ts):
            return -1, row
        for j in range(ncols):
            role = roles[j]
            if role == 0:  # instrument
                quoted = buf[i] == 34 if i < n else False
                if quoted:
                    i += 1
                s = i
                code = -1
                if last >= 0:  # most lines repeat the line before's name: compare it first
                    a0 = name_at[0, last]
                    ln = name_at[1, last] - a0
                    t = i + ln
                    if t < n and (buf[t] == 44 or buf[t] == 34 or buf[t] == 10 or buf[t] == 13):
                        code = last
                        for q in range(ln):
                            if buf[a0 + q] != buf[i + q]:
                                code = -1
                                break
                        if code >= 0:
                            i = t
                if code < 0:
                    h = np.uint64(14695981039346656037)
                    while i < n:
                        b = buf[i]
                        if b == 44 or b == 10 or b == 13 or b == 34:
                            break
                        if b < 32 or b > 126:
                            return -1, row
                        h = (h ^ np.uint64(b)) * np.uint64(1099511628211)
                        i += 1
                    e = i
                    if e == s:
                        return -1, row
                    k = np.int64(h & umask)
                    while slots[k] >= 0:
                        c = slots[k]
                        a0, a1 = name_at[0, c], name_at[1, c]
                        if a1 - a0 == e - s:
                            same = True
                            for q in range(e - s):
                                if buf[a0 + q] != buf[s + q]:
                                    same = False
                                    break
                            if same:
                                code = c
                                break
                        k = (k + 1) & mask
                    if code < 0:
                        if names >= cap:
                            return -1, row
                        code = names
                        name_at[0, code], name_at[1, code] = s, e
                        slots[k] = code
                        names += 1
                if quoted:
                    if i >= n or buf[i] != 34:
                        return -1, row
                    i += 1
                codes[row] = code
                last = code
            elif role == 1 and int_ts:
                neg, v, i = signed_digits(buf, i, INT64_MAX)
                if v < 0:
                    return -1, row
                ts[row] = -v if neg else v
            elif role == 1:
                if i + 19 > n:
                    return -1, row
                same = date_at >= 0
                if same:  # most lines have the line before's date: compare its 10 bytes
                    for q in range(10):
                        if buf[date_at + q] != buf[i + q]:
                            same = False
                            break
                if same:
                    day = date_day
                else:
                    if buf[i + 4] != 45 or buf[i + 7] != 45:
                        return -1, row
                    y = 0
                    for q in range(4):
                        if not digit(buf[i + q]):
                            return -1, row
                        y = y * 10 + (buf[i + q] - 48)
                    mo, d = two(buf, i + 5), two(buf, i + 8)
                    if y < 1678 or y > 2261:  # where int64 nanoseconds end
                        return -1, row
                    if mo < 1 or mo > 12 or d < 1:
                        return -1, row
                    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
                    if d > days_in[mo - 1] + (1 if mo == 2 and leap else 0):
                        return -1, row
                    day = days_from_civil(y, mo, d)
                    date_at, date_day = i, day
                sep = buf[i + 10]
                if sep != 84 and sep != 32:
                    return -1, row
                hh, mi, ss = two(buf, i + 11), two(buf, i + 14), two(buf, i + 17)
                if buf[i + 13] != 58 or buf[i + 16] != 58:
                    return -1, row
                if hh < 0 or hh > 23 or mi < 0 or mi > 59 or ss < 0 or ss > 59:
                    return -1, row
                i += 19
                frac = 0
                if i < n and buf[i] == 46:
                    i += 1
                    s = i
                    frac, i = digits(buf, i, 0, 999_999_999)
                    if frac < 0 or i == s or i - s > 9:
                        return -1, row
                    for _ in range(9 - (i - s)):
                        frac *= 10
                if i >= n:
                    return -1, row
                off = 0
                if buf[i] == 90:  # Z
                    i += 1
                elif buf[i] == 43 or buf[i] == 45:
                    sign = 1 if buf[i] == 43 else -1
                    oh = two(buf, i + 1)
                    if i + 3 < n and buf[i + 3] == 58:
                        om = two(buf, i + 4)
                        i += 6
                    else:
                        om = two(buf, i + 3)
                        i += 5
                    if oh < 0 or oh > 23 or om < 0 or om > 59:
                        return -1, row
                    off = sign * (oh * 3600 + om * 60)
                else:
                    return -1, row  # naive or another form: Arrow decides
                secs = day * 86400 + hh * 3600 + mi * 60 + ss - off
                ts[row] = secs * 1_000_000_000 + frac
            else:  # a number
                neg, m, i = signed_digits(buf, i, TWO53)
                if m < 0:
                    return -1, row
                e10 = 0
                if i < n and buf[i] == 46:
                    i += 1
                    s = i
                    m, i = digits(buf, i, m, TWO53)
                    if m < 0 or i == s:
                        return -1, row
                    e10 = s - i
                if i < n and (buf[i] == 101 or buf[i] == 69):
                    i += 1
                    eneg = i < n and buf[i] == 45
                    if i < n and (buf[i] == 45 or buf[i] == 43):
                        i += 1
                    s = i
                    x, i = digits(buf, i, 0, 9999)
                    if x < 0 or i == s:
                        return -1, row
                    e10 += -x if eneg else x
                if e10 < -22 or e10 > 22:
                    return -1, row
                v = float(m)
                if e10 > 0:
                    v = v * POW10[e10]
                elif e10 < 0:
                    v = v / POW10[-e10]
                floats[role - 2, row] = -v if neg else v
            if j + 1 < ncols:
                if i >= n or buf[i] != 44:
                    return -1, row
                i += 1
            else:
                if i < n and buf[i] == 13:
                    i += 1
                if i < n:
                    if buf[i] != 10:
                        return -1, row
                    i += 1
        row += 1
    return row, names


@njit(nogil=True, cache=True)
def bars_hold(codes, ts, o, h, lo, c, v):
    """True when every bar's values keep SEMANTICS.md's rules (prices finite and > 0,
    volume finite and >= 0, high >= max(open, close), low <= min(open, close)) and the
    rows come grouped by instrument code, ts rising strictly within each: one pass.
    False where any does not (the caller's NumPy checks then find and word it)."""
    inf = np.inf
    for i in range(ts.shape[0]):
        oi, hi, li, ci, vi = o[i], h[i], lo[i], c[i], v[i]
        if not (0.0 < oi < inf and 0.0 < hi < inf and 0.0 < li < inf and 0.0 < ci < inf):
            return False
        if not 0.0 <= vi < inf:
            return False
        if hi < max(oi, ci) or li > min(oi, ci):
            return False
        if i and (codes[i] < codes[i - 1] or (codes[i] == codes[i - 1] and ts[i] <= ts[i - 1])):
            return False
    return True

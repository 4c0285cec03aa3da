"""The kubelet's hint merge, exactly, without enumerating the cross product of the hint lists.

Why this is exact. The kubelet folds ``HintMerger.compare`` over every permutation (one hint per
list). That comparison is a strict total order on distinct masks (spec §4.4):

* empty merged masks never win; a preferred merged hint beats every non-preferred one;
* preferred hints: fewer nodes first, then the mask order (value, or average distance then value
  with ``prefer-closest-numa-nodes``);
* non-preferred hints, with B = the narrowest width of the most demanding list: width == B first,
  then widths below B from the widest down, then widths above B from the narrowest up; equal
  widths by the mask order.

So the fold returns the minimum of that order over the set of merged hints, and the order of
the permutations does not matter. The set is described without listing it:

1. Preferred phase. A permutation merges to a preferred hint iff every hint is preferred and
   every non-nil affinity equals one raw mask M (or all are nil). So the preferred merged masks
   are ``default & M`` for M preferred in every list that has no preferred nil hint — a set
   intersection, O(total hints). If one is non-empty, the best of them is the answer.
2. Non-preferred phase (no non-empty preferred result exists). A permutation's merged mask is
   the AND of its masks (nil = all nodes), so the achievable masks are the ANDs of one mask per
   list. Candidate masks X are searched in the order above, width by width; a width's masks are
   generated in mask order with pruning (every list must hold a superset of X, and X lies
   between the AND of all masks and the AND of each list's OR). X is achievable iff some
   choice of supersets of X, one per list, removes every other default node — an exact
   set-cover check, usually settled at once because one list holds X itself. The first
   achievable candidate is the answer; nothing else is enumerated.

Hint lists may be explicit or :class:`SupersetHints` (upward-closed, never expanded here). A
SupersetHints may carry thousands of minimal masks (a half-machine CPU request on 16 nodes): its
antichain is used as given whenever its universe lies inside the default affinity, and membership
and antichain tests go through :mod:`shim.topology_manager.antichain`, never pairwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import reduce
from itertools import accumulate, chain
from operator import and_, not_, or_
from typing import TypeAlias

import msgspec

from shim.topology_manager.bitmask import Bitmask
from shim.topology_manager.hint import FrozenHints, TopologyHint
from shim.topology_manager.hint_set import SupersetHints, maximal_masks, minimal_masks
from shim.topology_manager.numa_info import MaskKey, NUMAInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shim.topology_manager.hint import Segments

HintList: TypeAlias = Sequence[TopologyHint] | SupersetHints


# A msgspec Struct, not a dataclass: the OCI hook imports this module on every container start.
class MergeStats(msgspec.Struct):
    """How much work a merge did: masks compared in the preferred phase, candidate masks tested
    for achievability in the non-preferred phase."""

    preferred_candidates: int = 0
    candidates: int = 0

    @property
    def examined(self) -> int:
        return self.preferred_candidates + self.candidates


def fast_merge(
    lists: Sequence[HintList], numa: NUMAInfo, closest: bool, stats: MergeStats | None = None
) -> TopologyHint:
    """The hint the kubelet's ``HintMerger.Merge`` returns for these flattened lists."""
    stats = stats if stats is not None else MergeStats()
    default = numa.default_value
    fallback = TopologyHint(Bitmask(default), False)
    # No permutation at all (an empty list), or no node to place on: the kubelet's fallback.
    if default == 0 or any(_is_empty(hints) for hints in lists):
        return fallback
    key = numa.mask_key(closest)
    views = [_view(hints) for hints in lists]
    preferred = _best_preferred(views, default, key, stats)
    if preferred is not None:
        return TopologyHint(Bitmask(preferred), True)
    widest_need = max((count for view in views if (count := view.narrowest_count()) is not None), default=0)
    restricted = [view.restrict(default) for view in views]
    best = _best_non_preferred(restricted, default, widest_need, key if closest else None, stats)
    return fallback if best is None else TopologyHint(Bitmask(best), False)


def _is_empty(hints: HintList) -> bool:
    return hints.is_empty() if isinstance(hints, SupersetHints) else len(hints) == 0


# --- per-list views -------------------------------------------------------------------------


class _Restricted:
    """One list's masks ANDed with the default affinity, as the non-preferred search needs them."""

    and_all: int
    or_all: int
    neutral: bool

    def has_superset(self, value: int) -> bool:
        raise NotImplementedError

    def contains(self, value: int) -> bool:
        raise NotImplementedError

    def supersets(self, value: int) -> Iterable[int]:
        """Members that contain ``value``; enough to include the inclusion-minimal ones."""
        raise NotImplementedError


class _ExplicitRestricted(_Restricted):
    def __init__(self, masks: set[int], default: int, or_all: int) -> None:
        self.masks = masks
        self.and_all = _and_all(masks, default)
        self.or_all = or_all
        self.maximal = maximal_masks(masks, self.or_all)
        self.neutral = masks == {default}

    def has_superset(self, value: int) -> bool:
        return any(big & value == value for big in self.maximal)

    def contains(self, value: int) -> bool:
        return value in self.masks

    def supersets(self, value: int) -> Iterable[int]:
        return (mask for mask in self.masks if mask & value == value)


def _and_all(masks: Iterable[int], start: int) -> int:
    """``start`` ANDed with every mask, stopping at the first empty result (a list that holds
    two disjoint masks, e.g. two single nodes, gets there within a few masks)."""
    if next(filter(not_, accumulate(masks, and_, initial=start)), None) is not None:
        return 0
    return reduce(and_, masks, start)


class _FamilyRestricted(_Restricted):
    # {default & m : m member} is again upward closed: minimal masks default & g, universe
    # default & universe (any x between them is default & (g | x)).
    def __init__(self, family: SupersetHints, default: int) -> None:
        self.universe = family.universe & default
        if family.universe & ~default == 0:
            # Nothing to cut (the usual case: the provider's universe is the machine): the
            # family's own antichain and its membership test serve as they are.
            self.family: SupersetHints = family
            self.minimal = family.minimal
        else:
            self.minimal = minimal_masks(value & default for value in family.minimal)
            self.family = SupersetHints.trusted(self.minimal, self.universe)
        self.and_all = reduce(and_, self.minimal, default)
        self.or_all = self.universe
        self.neutral = self.minimal == (default,)

    def has_superset(self, value: int) -> bool:
        return value & ~self.universe == 0

    def contains(self, value: int) -> bool:
        return self.family.contains(value)

    def supersets(self, value: int) -> Iterable[int]:
        return (value | small for small in self.minimal)


class _View:
    """One flattened list, read lazily: the preferred phase never looks at the rest."""

    def preferred(self) -> tuple[set[int], bool]:
        """Raw values of the preferred non-nil masks, and whether a preferred nil hint exists."""
        raise NotImplementedError

    def narrowest_count(self) -> int | None:
        raise NotImplementedError

    def restrict(self, default: int) -> _Restricted:
        raise NotImplementedError


class _ExplicitView(_View):
    # Comprehensions and C-level reductions only: an explicit list may hold 2^16 hints, e.g. the
    # memory manager's on an empty 16-node machine. (Comprehensions beat attrgetter maps here.)
    def __init__(self, hints: Sequence[TopologyHint]) -> None:
        self.hints = hints
        self._values: list[int] | None = None
        self._has_nil = False
        self._preferred: tuple[set[int], bool] | None = None
        self._restricted: dict[int, _ExplicitRestricted] = {}

    def values(self) -> list[int]:
        """The non-nil mask values (``_has_nil`` then says whether a nil one was skipped)."""
        if self._values is None and self._segments() is not None:
            self._values = list(chain.from_iterable(masks for _, masks in self._segments() or ()))
        if self._values is None:
            try:
                self._values = [hint.affinity.value for hint in self.hints]  # type: ignore[union-attr]
            except AttributeError:  # a nil affinity
                self._values = [hint.affinity.value for hint in self.hints if hint.affinity is not None]
                self._has_nil = True
        return self._values

    def _segments(self) -> Segments | None:
        return self.hints.segments if type(self.hints) is FrozenHints else None

    def preferred(self) -> tuple[set[int], bool]:
        segments = self._segments()
        if self._preferred is None and segments is not None:
            self._preferred = {mask for preferred, masks in segments if preferred for mask in masks}, False
        if self._preferred is None:
            chosen = [hint.affinity for hint in self.hints if hint.preferred]
            values = {affinity.value for affinity in chosen if affinity is not None}
            self._preferred = values, len(values) < len(chosen) and any(affinity is None for affinity in chosen)
        # A copy: the caller may change it, and a shared view keeps its own.
        return set(self._preferred[0]), self._preferred[1]

    def narrowest_count(self) -> int | None:
        return min(map(int.bit_count, self.values()), default=None)

    def restrict(self, default: int) -> _Restricted:
        found = self._restricted.get(default)
        if found is None:
            found = self._restricted[default] = self._restrict(default)
        return found

    def _restrict(self, default: int) -> _ExplicitRestricted:
        values = self.values()
        masks = set(values)
        # Nodes outside the default affinity are cut; with the usual default (nodes 0..n-1) a
        # maximum test tells that none are, cheaper than OR-ing every mask.
        inside = default & (default + 1) == 0 and max(masks, default=0) <= default
        if not inside:
            masks = {value & default for value in masks}
        if self._has_nil:
            masks.add(default)
        or_all = default if default in masks else reduce(or_, masks, 0)
        return _ExplicitRestricted(masks, default, or_all)


class _FamilyView(_View):
    def __init__(self, family: SupersetHints) -> None:
        self.family = family

    def preferred(self) -> tuple[set[int], bool]:
        return set(self.family.preferred), False

    def narrowest_count(self) -> int | None:
        return self.family.narrowest_count()

    def restrict(self, default: int) -> _Restricted:
        return _FamilyRestricted(self.family, default)


# The views of the last few FrozenHints lists merged, by identity (each entry keeps its list
# alive, so its id is not reused): a provider gives the same FrozenHints for equal answers, and
# the memory manager's may hold 2^16 hints whose values, preferred set and restriction are then
# derived once. Views are read-only once built; only FrozenHints (immutable) are kept.
_RECENT_VIEWS_LIMIT = 4
_recent_views: dict[int, tuple[FrozenHints, _ExplicitView]] = {}


def _view(hints: HintList) -> _View:
    if isinstance(hints, SupersetHints):
        return _FamilyView(hints)
    if type(hints) is not FrozenHints:
        return _ExplicitView(hints)
    known = _recent_views.get(id(hints))
    if known is not None and known[0] is hints:
        return known[1]
    if len(_recent_views) >= _RECENT_VIEWS_LIMIT:
        _recent_views.clear()
    view = _ExplicitView(hints)
    _recent_views[id(hints)] = (hints, view)
    return view


# --- phase 1: preferred ---------------------------------------------------------------------


def _best_preferred(views: Sequence[_View], default: int, key: MaskKey, stats: MergeStats) -> int | None:
    constraining: list[set[int]] = []
    offered: set[int] = set()
    for view in views:
        values, any_node = view.preferred()
        if any_node:
            offered |= values
        else:
            constraining.append(values)
    if constraining:
        # M must be preferred in every list without a preferred nil hint; the others take M or nil.
        constraining.sort(key=len)
        candidates = set(constraining[0])
        for values in constraining[1:]:
            candidates &= values
    else:
        # Every list has a preferred nil hint: all-nil merges to the default affinity.
        candidates = offered | {default}
    merged = {value & default for value in candidates}
    merged.discard(0)
    stats.preferred_candidates += len(merged)
    return min(merged, key=key) if merged else None


# --- phase 2: non-preferred -----------------------------------------------------------------


def _best_non_preferred(
    lists: Sequence[_Restricted], default: int, widest_need: int, distance_key: MaskKey | None, stats: MergeStats
) -> int | None:
    """``distance_key`` orders same-width masks by distance; None = by value (narrowest)."""
    lists = [view for view in lists if not view.neutral]
    if not lists:
        return default  # every permutation merges to the default affinity
    lower, upper = default, default
    for view in lists:
        lower &= view.and_all
        upper &= view.or_all
    low, high = max(1, lower.bit_count()), upper.bit_count()
    for count in _width_order(widest_need, low, high):
        for candidate in _candidates(lists, lower, upper, count, distance_key):
            stats.candidates += 1
            if _achievable(lists, default, candidate):
                return candidate
    return None


def _width_order(widest_need: int, low: int, high: int) -> Iterator[int]:
    """Widths in the non-preferred preference order: B, then B-1 down to 1, then B+1 up."""
    if low <= widest_need <= high:
        yield widest_need
    yield from range(min(widest_need - 1, high), low - 1, -1)
    yield from range(max(widest_need + 1, low), high + 1)


def _candidates(
    lists: Sequence[_Restricted], lower: int, upper: int, count: int, distance_key: MaskKey | None
) -> Iterator[int]:
    """Masks of ``count`` nodes between ``lower`` and ``upper`` that every list could still
    produce (it holds a superset), in the merger's mask order."""
    free = Bitmask(upper & ~lower).bits()
    need = count - lower.bit_count()

    def feasible(value: int) -> bool:
        return all(view.has_superset(value) for view in lists)

    if need < 0 or need > len(free) or not feasible(lower):
        return iter(())
    ascending = _ascending_subsets(free, need, lower, feasible)
    if distance_key is None:
        return ascending  # same width orders by value, which is the generation order
    return iter(sorted(ascending, key=distance_key))


def _ascending_subsets(bits: Sequence[int], size: int, prefix: int, feasible: Callable[[int], bool]) -> Iterator[int]:
    """``prefix`` plus ``size`` of ``bits`` (ascending ids), in ascending integer value.

    The highest chosen bit decides the integer order, so it is chosen first, lowest first; a
    prefix no list can hold prunes everything below it.
    """
    if size == 0:
        yield prefix
        return
    for top in range(size - 1, len(bits)):
        value = prefix | 1 << bits[top]
        if feasible(value):
            yield from _ascending_subsets(bits[:top], size - 1, value, feasible)


def _achievable(lists: Sequence[_Restricted], default: int, target: int) -> bool:
    """Whether one mask per list (each a superset of ``target``) ANDs to exactly ``target``."""
    rest = default & ~target
    if rest == 0 or any(view.contains(target) for view in lists):
        return True  # the others take any superset (the candidate generator checked one exists)
    # Each list removes the nodes its chosen mask lacks; together they must remove ``rest``.
    options = []
    for view in lists:
        removable = maximal_masks(rest & ~mask for mask in view.supersets(target))
        options.append([value for value in removable if value])
    return _covers(options, rest)


def _covers(options: list[list[int]], rest: int) -> bool:
    """Pick one option per list so that their union covers ``rest`` (exact, memoised search)."""
    options = sorted((choices for choices in options if choices), key=len)
    reach = [0] * (len(options) + 1)
    for index in range(len(options) - 1, -1, -1):
        union = 0
        for value in options[index]:
            union |= value
        reach[index] = reach[index + 1] | union
    failed: set[tuple[int, int]] = set()

    def search(index: int, remaining: int) -> bool:
        if remaining == 0:
            return True
        if reach[index] & remaining != remaining or (index, remaining) in failed:
            return False
        # Covering more is never worse, so a list always takes one of its maximal options.
        for value in sorted(options[index], key=lambda v: -(v & remaining).bit_count()):
            if search(index + 1, remaining & ~value):
                return True
        failed.add((index, remaining))
        return False

    return search(0, rest)

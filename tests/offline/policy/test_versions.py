"""Version comparison and ranges, as SBOM bans use them across ecosystems."""

from __future__ import annotations

import itertools

import pytest

from offline.policy.versions import compare_versions, parse_range, parse_version, versions_equal


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        # Segments compare as numbers, not text.
        ("2.17.1", "2.17.10"),
        ("2.9", "2.10"),
        ("1.2.3", "1.3"),
        # Pre-releases come before the release, in their usual order.
        ("2.0.0-rc1", "2.0.0"),
        ("2.0.0-rc1", "2.0.0-rc2"),
        ("1.0-alpha", "1.0-beta"),
        ("1.0-beta.2", "1.0-rc.1"),
        ("1.0-SNAPSHOT", "1.0"),
        ("1.0.dev3", "1.0a1"),
        ("1.0a1", "1.0b1"),
        ("1.0b1", "1.0rc1"),
        ("1.0-rc1", "1.0.1"),
        # Debian: the tilde sorts before everything; revisions and suffixes after the release.
        ("5.6.0~rc1", "5.6.0"),
        ("5.6.0", "5.6.0-0.2"),
        ("5.6.0-0.2", "5.6.1"),
        ("2.36-9", "2.36-9+deb12u1"),
        ("2.36-9+deb12u1", "2.36-9+deb12u2"),
        # The epoch decides first.
        ("5.6.2", "1:5.6.0-0.2"),
        ("1:5.6.0", "2:0.1"),
        # OpenSSL's letter releases come after the plain release, in order.
        ("1.1.1", "1.1.1a"),
        ("1.1.1t", "1.1.1w"),
        ("1.1.1w", "1.1.2"),
        # Post-releases and build counters.
        ("1.0", "1.0.post1"),
        ("1.0-1", "1.0-2"),
    ],
)
def test_ordering(lower: str, higher: str) -> None:
    assert compare_versions(lower, higher) == -1
    assert compare_versions(higher, lower) == 1


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("2.17", "2.17.0"),
        ("v1.2.3", "1.2.3"),
        ("1.01", "1.1"),
        ("1.0.RELEASE", "1.0"),
        ("1.0-GA", "1.0.0"),
        ("0:1.2", "1.2"),
        ("1.0-RC1", "1.0-rc1"),
    ],
)
def test_equal_versions(left: str, right: str) -> None:
    assert compare_versions(left, right) == 0
    assert versions_equal(left, right)


def test_the_comparison_is_transitive_across_mixed_shapes() -> None:
    # Padding with zeros next to words is where ad-hoc comparators go circular.
    versions = ["1", "1.0.0-rc", "1-x", "1.0.1", "1~beta", "1.0a1", "1.1.1a", "1:0", "1.0.0.0"]
    for a, b, c in itertools.product(versions, repeat=3):
        if compare_versions(a, b) <= 0 and compare_versions(b, c) <= 0:
            assert compare_versions(a, c) <= 0, (a, b, c)


def test_a_text_without_numbers_or_words_is_not_a_version() -> None:
    with pytest.raises(ValueError, match="not a version"):
        parse_version("..")


def test_versions_equal_falls_back_to_text_for_non_versions() -> None:
    assert versions_equal("--", "--")
    assert not versions_equal("--", "1.0")


class TestRanges:
    def test_a_single_upper_bound(self) -> None:
        below = parse_range("<2.17.1")
        assert below.contains("2.14.1")
        assert below.contains("2.17.0")
        assert not below.contains("2.17.1")
        assert not below.contains("2.17.10")

    def test_comparisons_joined_by_commas_must_all_hold(self) -> None:
        xz = parse_range(">=5.6.0,<5.6.2")
        assert xz.contains("5.6.0")
        assert xz.contains("5.6.1")
        assert xz.contains("5.6.0-0.2")
        assert not xz.contains("5.4.5")
        assert not xz.contains("5.6.2")

    @pytest.mark.parametrize(
        ("text", "inside", "outside"),
        [
            ("<=1.2", "1.2.0", "1.2.1"),
            (">1.2", "1.2.1", "1.2"),
            ("==1.2", "1.2.0", "1.2.1"),
            ("!=1.2", "1.3", "1.2"),
            ("1.2", "1.2", "1.2.1"),  # a bare version means ==
        ],
    )
    def test_every_operator(self, text: str, inside: str, outside: str) -> None:
        assert parse_range(text).contains(inside)
        assert not parse_range(text).contains(outside)

    def test_white_space_around_comparisons_is_allowed(self) -> None:
        assert str(parse_range(" >= 1.0 , < 2.0 ")) == ">=1.0,<2.0"

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("<1.0,", "empty comparison"),
            ("=>1.0", "not a comparison"),
            ("<", "not a comparison"),
            ("<<1.0", "not a comparison"),
            ("<..", "not a version"),
        ],
    )
    def test_malformed_ranges(self, text: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            parse_range(text)

"""Password hashing: scrypt encoding, salts, constant-time verification, the policy."""

from __future__ import annotations

import hmac

import pytest

from broker import passwords
from broker.passwords import WeakPassword, check_policy, hash_password, verify_password

GOOD = "a long enough passphrase"


def test_hash_is_scrypt_with_parameters_salt_and_key() -> None:
    encoded = hash_password(GOOD)
    scheme, n, r, p, salt, key = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**15), "8", "1")
    assert len(passwords._unb64(salt)) == 16 and len(passwords._unb64(key)) == 32
    assert GOOD not in encoded


def test_same_password_gets_a_fresh_salt() -> None:
    assert hash_password(GOOD) != hash_password(GOOD)


def test_verify_accepts_only_the_password() -> None:
    encoded = hash_password(GOOD)
    assert verify_password(GOOD, encoded)
    assert not verify_password(GOOD + " ", encoded)
    assert not verify_password("", encoded)


@pytest.mark.parametrize("stored", [
    "", "plain", "scrypt$1$8$1$AAAA$BBBB", "scrypt$32768$8$1$!!$??", "bcrypt$x$y$z$a$b",
    f"scrypt${2**30}$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,
])
def test_malformed_hashes_verify_false_without_raising(stored: str) -> None:
    assert verify_password(GOOD, stored) is False


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(passwords.hmac, "compare_digest", spy)
    assert verify_password(GOOD, hash_password(GOOD))
    assert len(calls) == 1


@pytest.mark.parametrize("bad", ["short", "elevenchars", "a" * 40, "x" * 1025])
def test_policy_refuses_weak_passwords(bad: str) -> None:
    with pytest.raises(WeakPassword):
        check_policy(bad)
    with pytest.raises(WeakPassword):
        hash_password(bad)


def test_policy_minimum_is_twelve() -> None:
    check_policy("twelve chars")
    assert passwords.MIN_LENGTH == 12


def test_generated_passwords_meet_the_policy() -> None:
    pw = passwords.generate_password()
    check_policy(pw)
    assert pw != passwords.generate_password()


def test_needs_rehash_for_weaker_parameters() -> None:
    assert not passwords.needs_rehash(hash_password(GOOD))
    weak = hash_password(GOOD).replace(f"${2**15}$", f"${2**14}$", 1)
    assert passwords.needs_rehash(weak)

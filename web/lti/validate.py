"""id_token validation for LTI 1.3 resource-link launches (1EdTech Security Framework §5.1.3).

:func:`validate_id_token` checks, in this order, and raises the named :class:`LtiError`:

1. size <= :data:`MAX_TOKEN_BYTES` (``token_too_large``); three base64url JSON segments
   (``malformed_token``);
2. header ``alg`` is ``RS256`` (``bad_algorithm``: ``none``, ``HS256`` and the rest are
   refused before any key is touched) and names a ``kid`` (``unknown_kid``);
3. ``iss`` is a registered issuer (``unknown_issuer``) and the one this login was for
   (``bad_state``);
4. the signature verifies with the platform key ``kid`` (``unknown_kid``, ``bad_signature``);
5. ``aud`` contains our client id and nothing untrusted (``bad_audience``); ``azp``, when
   present or when ``aud`` has several entries, is our client id (``bad_azp``);
6. ``exp`` + leeway not passed (``expired``), ``iat`` not beyond now + leeway
   (``iat_in_future``) nor older than :attr:`Policy.max_age_s` (``expired``), ``nbf`` honoured;
7. ``sub`` present (``missing_subject``); message type ``LtiResourceLinkRequest``
   (``deep_linking_unsupported`` / ``bad_message_type``), version ``1.3.0`` (``bad_version``);
8. ``deployment_id`` listed for the registration and equal to the login's, if it sent one
   (``unknown_deployment``); ``target_link_uri`` equal to the login's
   (``target_link_mismatch``); ``resource_link.id`` present (``missing_resource_link``);
   roles present (``missing_roles``);
9. ``nonce`` present (``missing_nonce``), equal to the login's (``nonce_mismatch``), and used
   for the first time (``nonce_replayed``). The nonce is spent last, so a token refused for
   another reason does not burn it.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError

from web.lti import errors as E
from web.lti.launch import CLAIM, roles_claim
from web.lti.nonces import NonceStore
from web.lti.platform_keys import PlatformKeyCache
from web.lti.registry import PlatformRegistration, Registry
from web.lti.state import LoginState

MAX_TOKEN_BYTES = 16 * 1024
RESOURCE_LINK = "LtiResourceLinkRequest"
DEEP_LINKING = "LtiDeepLinkingRequest"
LTI_VERSION = "1.3.0"


@dataclass(frozen=True)
class Policy:
    leeway_s: int = 60
    max_age_s: int = 600  # oldest acceptable iat

    @property
    def nonce_ttl_s(self) -> int:
        return self.max_age_s + 2 * self.leeway_s


def _segment(text: str) -> Any:
    try:
        return orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise E.MalformedToken("segment is not base64url JSON") from exc


def peek(token: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS *without verifying it* (size and shape checked)."""
    if not isinstance(token, str) or not token:
        raise E.MalformedToken("id_token missing")
    if len(token.encode()) > MAX_TOKEN_BYTES:
        raise E.TokenTooLarge("id_token larger than the limit", limit=MAX_TOKEN_BYTES)
    parts = token.split(".")
    if len(parts) != 3:
        raise E.MalformedToken("id_token is not a compact JWS")
    header, claims = _segment(parts[0]), _segment(parts[1])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise E.MalformedToken("id_token header or payload is not a JSON object")
    return header, claims


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise E.MalformedToken(f"{name} missing or not a number")
    return float(value)


def check_audience(claims: Mapping[str, Any], registration: PlatformRegistration) -> None:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise E.BadAudience("aud missing or malformed")
    if registration.client_id not in audiences:
        raise E.BadAudience("aud does not contain our client id")
    trusted = {registration.client_id} | registration.trusted_audiences
    if any(a not in trusted for a in audiences):
        raise E.BadAudience("aud contains an untrusted audience")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != registration.client_id:
        raise E.BadAzp("azp missing or not our client id")


def check_times(claims: Mapping[str, Any], policy: Policy, now: float) -> None:
    exp, iat = _number(claims, "exp"), _number(claims, "iat")
    if now > exp + policy.leeway_s:
        raise E.Expired("token expired", exp=int(exp))
    if iat > now + policy.leeway_s:
        raise E.IatInFuture("iat is in the future", iat=int(iat))
    if iat < now - policy.max_age_s - policy.leeway_s:
        raise E.Expired("token issued too long ago", iat=int(iat))
    if "nbf" in claims and _number(claims, "nbf") > now + policy.leeway_s:
        raise E.IatInFuture("nbf is in the future")


def check_lti_claims(
    claims: Mapping[str, Any], registration: PlatformRegistration, login: LoginState
) -> None:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise E.MissingSubject("sub missing (anonymous launch)")
    message_type = claims.get(CLAIM + "message_type")
    if message_type == DEEP_LINKING:
        raise E.DeepLinkingUnsupported("deep linking requests are not supported")
    if message_type != RESOURCE_LINK:
        raise E.BadMessageType("unsupported message type")
    if claims.get(CLAIM + "version") != LTI_VERSION:
        raise E.BadVersion("LTI version is not 1.3.0")
    deployment = claims.get(CLAIM + "deployment_id")
    if not isinstance(deployment, str) or deployment not in registration.deployment_ids:
        raise E.UnknownDeployment("deployment_id missing or not registered")
    if login.deployment_id and deployment != login.deployment_id:
        raise E.UnknownDeployment("deployment_id differs from the one given at login")
    if claims.get(CLAIM + "target_link_uri") != login.target_link_uri:
        raise E.TargetLinkMismatch("target_link_uri differs from the one given at login")
    link = claims.get(CLAIM + "resource_link")
    if not isinstance(link, dict) or not isinstance(link.get("id"), str) or not link["id"]:
        raise E.MissingResourceLink("resource_link.id missing")
    roles_claim(claims)


async def validate_id_token(
    token: object,
    *,
    login: LoginState,
    registry: Registry,
    keys: PlatformKeyCache,
    nonces: NonceStore,
    policy: Policy | None = None,
    now: float | None = None,
) -> tuple[PlatformRegistration, dict[str, Any]]:
    """Verify ``token`` for ``login``; return the registration and the verified claims.

    Raises an :class:`~web.lti.errors.LtiError` subclass naming the first failed check (the
    module docstring lists them). Spends the nonce only when every other check passed.
    """
    policy = policy or Policy()
    header, unverified = peek(token)
    assert isinstance(token, str)
    if header.get("alg") != "RS256":
        raise E.BadAlgorithm("only RS256 is accepted", alg=str(header.get("alg"))[:16])
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise E.UnknownKid("token names no kid")
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not registry.knows_issuer(issuer):
        raise E.UnknownIssuer("issuer not registered")
    if issuer != login.issuer:
        raise E.BadState("token issuer differs from the login's")
    registration = registry.find(login.issuer, login.client_id)
    key = await keys.get_key(registration, kid)
    try:
        verified = jwt.decode(token, key, algorithms=["RS256"])
    except BadSignatureError as exc:
        raise E.BadSignature("signature does not verify") from exc
    except (JoseError, ValueError) as exc:
        raise E.MalformedToken("token could not be decoded") from exc
    claims: dict[str, Any] = dict(verified.claims)
    if claims.get("iss") != registration.issuer:
        raise E.UnknownIssuer("issuer not registered")
    check_audience(claims, registration)
    check_times(claims, policy, time.time() if now is None else now)
    check_lti_claims(claims, registration, login)
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise E.MissingNonce("nonce missing")
    if nonce != login.nonce:
        raise E.NonceMismatch("nonce differs from the one issued at login")
    if not await nonces.use(nonce, policy.nonce_ttl_s):
        raise E.NonceReplayed("nonce already used")
    return registration, claims

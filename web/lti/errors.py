"""Why an LTI login or launch was refused: one class per reason, each with a stable ``code``.

``code`` is what the log (logger ``web.lti``) and the tests see; ``public_message`` is the
English source string shown (translated) on the error page. Messages never echo token
contents back to the browser.
"""

from __future__ import annotations

from typing import Any

from broker.errors import BrokerError


def N_(text: str) -> str:
    """Mark a string for extraction into the gettext catalog without translating it yet."""
    return text


class LtiError(BrokerError):
    """A refused LTI login or launch; nothing was created."""

    code = "lti_error"
    http_status = 400
    public_message = N_("This launch from your school's learning platform could not be accepted.")

    def __init__(self, message: str | None = None, **detail: Any) -> None:
        super().__init__(message or self.code, **detail)


class TokenTooLarge(LtiError):
    code = "token_too_large"
    http_status = 413


class MalformedToken(LtiError):
    code = "malformed_token"


class BadAlgorithm(LtiError):
    code = "bad_algorithm"
    http_status = 401


class UnknownIssuer(LtiError):
    code = "unknown_issuer"
    http_status = 403
    public_message = N_(
        "This learning platform is not registered with Homework Help. "
        "Please ask your district's LMS administrator to register it."
    )


class UnknownClient(LtiError):
    code = "unknown_client"
    http_status = 403
    public_message = UnknownIssuer.public_message


class UnknownKid(LtiError):
    code = "unknown_kid"
    http_status = 401


class KeysUnavailable(LtiError):
    """The platform's key set could not be fetched and no earlier copy is cached."""

    code = "keys_unavailable"
    http_status = 503
    public_message = N_(
        "Homework Help could not reach your learning platform to check this launch. "
        "Please try again in a minute."
    )


class BadSignature(LtiError):
    code = "bad_signature"
    http_status = 401


class Expired(LtiError):
    code = "expired"
    http_status = 401
    public_message = N_("This launch has expired. Please go back and open Homework Help again.")


class IatInFuture(LtiError):
    code = "iat_in_future"
    http_status = 401


class BadAudience(LtiError):
    code = "bad_audience"
    http_status = 401


class BadAzp(LtiError):
    code = "bad_azp"
    http_status = 401


class MissingNonce(LtiError):
    code = "missing_nonce"
    http_status = 401


class NonceMismatch(LtiError):
    code = "nonce_mismatch"
    http_status = 401


class NonceReplayed(LtiError):
    code = "nonce_replayed"
    http_status = 401
    public_message = N_(
        "This launch was already used. Please go back and open Homework Help again."
    )


class BadState(LtiError):
    code = "bad_state"
    http_status = 401
    public_message = N_(
        "Your browser did not keep the sign-in information for this launch. "
        "Open Homework Help in a new tab to continue."
    )


class UnknownDeployment(LtiError):
    code = "unknown_deployment"
    http_status = 403
    public_message = N_(
        "This installation of Homework Help is not registered for your school. "
        "Please ask your district's LMS administrator."
    )


class TargetLinkMismatch(LtiError):
    code = "target_link_mismatch"


class BadMessageType(LtiError):
    code = "bad_message_type"


class DeepLinkingUnsupported(LtiError):
    code = "deep_linking_unsupported"
    public_message = N_(
        "Homework Help does not offer content selection. Add it as an external tool link instead."
    )


class BadVersion(LtiError):
    code = "bad_version"


class MissingRoles(LtiError):
    code = "missing_roles"
    http_status = 403
    public_message = N_("Your learning platform did not say who you are in this course.")


class UnsupportedRole(LtiError):
    code = "unsupported_role"
    http_status = 403
    public_message = N_("Homework Help is available to students, teachers and staff only.")


class MissingSubject(LtiError):
    code = "missing_subject"
    http_status = 403
    public_message = N_("Please sign in to your learning platform before opening Homework Help.")


class MissingResourceLink(LtiError):
    code = "missing_resource_link"


class BadLoginRequest(LtiError):
    """The OIDC login initiation lacked a parameter or named a foreign target."""

    code = "bad_login_request"


class Unavailable(LtiError):
    """PostgreSQL or Redis could not be reached during the launch; nothing was created, and
    the same launch from the course works once it is back (the page says to wait)."""

    code = "unavailable"
    http_status = 503
    public_message = N_("Homework Help is briefly unavailable. Please wait a minute.")

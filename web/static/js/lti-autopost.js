// Submits the LTI form on load (the OIDC form_post a platform's authorisation answers with).
document.getElementById("autopost").submit();

// The staff pages' sign-in: the sign-in cookie's (or a demo) token, else the sign-in card
// with its demo button; once signed in, "Signed in: district staff" and the page's start.
import { t } from "./i18n.js";
import { $, say, claimsOf } from "./common.js";

export async function staffSignIn(tokens, onReady) {
  const token = await tokens.get();
  if (!token) {
    $("signin").hidden = false;
    const demo = $("demo-staff");
    if (demo) {
      demo.addEventListener("click", async () => {
        try { await tokens.demo({ role: "staff" }); $("signin").hidden = true; staffSignIn(tokens, onReady); } catch (_) {
          say($("banner"), t("Could not start the demo."));
        }
      }, { once: true });
    }
    return;
  }
  const signOut = $("sign-out-form");
  if (signOut) { // POST /logout clears the sign-in cookie; then the sign-in page
    signOut.hidden = false;
    signOut.addEventListener("submit", async (event) => {
      event.preventDefault(); // fetch sends the page's Origin (a form post under no-referrer sends "null")
      tokens.forget();
      try {
        await fetch(signOut.action, { method: "POST", credentials: "same-origin", headers: { Accept: "application/json" } });
      } catch (_) { /* offline: the token is forgotten; the cookie ends by itself */ }
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    });
  }
  const claims = claimsOf(token);
  const scope = claims.scope === "district" ? t("district") : `${claims.scope || ""} ${claims.scope_id || ""}`.trim();
  say($("who"), t("Signed in: {scope} staff", { scope }));
  await onReady(token, claims);
}

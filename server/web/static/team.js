// The team page: a role change is saved as soon as it is picked (the Save button stays
// for browsers without scripts).
for (const form of document.querySelectorAll("form[data-tt-role-form]")) {
  form.querySelector("[data-tt-role-save]").hidden = true;
  form.querySelector("select[name=role]").addEventListener("change", () => form.requestSubmit());
}

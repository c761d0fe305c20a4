// HeySpace (app.hey.space) and its successor TimeCamp Planner (planner.timecamp.com), the
// same app. Its class names are hashed CSS-module names that change between releases, so
// items are found by element ids only: `task_<id>` on HeySpace, the bare id on Planner;
// an open card is a dialog whose id comes from the URL's `?taskId=` first.
(() => {
  "use strict";
  const { start, text } = globalThis.TasktimerButtons;

  // Card ids look like UUIDs; an element id is a card's when it is one (optionally
  // prefixed `task_`), which keeps unrelated element ids out.
  const CARD_ID = /^(?:task_)?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

  const openCardId = () => new URL(location.href).searchParams.get("taskId");
  const cardIdFromElement = (node) => CARD_ID.exec(node?.id ?? "")?.[1] ?? null;
  const firstLine = (node) => (node?.getAttribute("aria-label") || text(node)).split("\n")[0];
  const heading = (dialog) => dialog.querySelector("h1, h2, h3, [role='heading']");

  start({
    service: "heyspace",
    hosts: ["app.hey.space", "planner.timecamp.com"],
    places: [
      {
        name: "board-card",
        // `[id]` on Planner (bare ids), narrowed to card ids by `accept`.
        selector: '[id^="task_"], [id]',
        accept: (card) => cardIdFromElement(card) !== null && !card.closest('[role="dialog"]'),
        externalId: cardIdFromElement,
        title: firstLine,
      },
      {
        name: "card-detail",
        selector: '[role="dialog"]',
        externalId: (dialog) => {
          const fromUrl = openCardId();
          if (fromUrl) return fromUrl;
          const inner = [...dialog.querySelectorAll("[id]")].find((node) => cardIdFromElement(node));
          return cardIdFromElement(inner);
        },
        title: (dialog) => firstLine(heading(dialog)),
        mount: (dialog) => {
          const title = heading(dialog);
          return title ? { parent: title.parentElement, before: title.nextSibling } : dialog;
        },
      },
    ],
    pageItem: () => {
      const externalId = openCardId();
      return externalId ? { externalId } : null;
    },
  });
})();

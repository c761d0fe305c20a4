// HeySpace (app.hey.space): its class names are hashed CSS-module names that change
// between releases, so items are found by element ids (`task_<id>`), ARIA roles and the
// `?taskId=` parameter of an open card's URL only.
(() => {
  "use strict";
  const { start, text } = globalThis.TasktimerButtons;

  const openCardId = () => new URL(location.href).searchParams.get("taskId");
  const cardIdFromElement = (node) => (node?.id?.startsWith("task_") ? node.id.slice(5) : null);
  const firstLine = (node) => (node?.getAttribute("aria-label") || text(node)).split("\n")[0];

  start({
    service: "heyspace",
    places: [
      {
        name: "board-card",
        selector: '[id^="task_"]',
        accept: (card) => !card.closest('[role="dialog"]'),
        externalId: cardIdFromElement,
        title: firstLine,
      },
      {
        name: "card-detail",
        selector: '[role="dialog"]',
        externalId: (dialog) => openCardId() ?? cardIdFromElement(dialog.querySelector('[id^="task_"]')),
        title: (dialog) => firstLine(dialog.querySelector('[id^="task_"], h1, h2')),
        mount: (dialog) => {
          const heading = dialog.querySelector('[id^="task_"], h1, h2');
          return heading ? { parent: heading.parentElement, before: heading.nextSibling } : dialog;
        },
      },
    ],
    pageItem: () => {
      const externalId = openCardId();
      return externalId ? { externalId } : null;
    },
  });
})();

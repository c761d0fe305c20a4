// Asana (app.asana.com): where tasks are on the page and how to read their gid.
// Class names come from Asana's React app and change with redesigns; they live here only.
(() => {
  "use strict";
  const { start, text, idAfterUnderscore } = globalThis.TasktimerButtons;

  // /0/<project>/<task>[/f] and /1/<workspace>/project/<project>/task/<task>
  const TASK_URLS = [/^\/0\/\d+\/(\d+)(?:\/f)?\/?$/, /^\/1\/\d+\/(?:project\/\d+\/)?task\/(\d+)/];

  function taskIdFromUrl() {
    for (const pattern of TASK_URLS) {
      const match = pattern.exec(location.pathname);
      if (match) return match[1];
    }
    return null;
  }

  function idFromRow(row) {
    const own = row.querySelector("[data-task-id]")?.getAttribute("data-task-id");
    if (own) return own;
    const input = row.querySelector("textarea[id], input[id]");
    const fromInput = idAfterUnderscore(input?.id);
    if (fromInput) return fromInput;
    const href = row.querySelector("a[href]")?.getAttribute("href");
    if (!href) return null;
    const { pathname } = new URL(href, location.href);
    return TASK_URLS.map((p) => p.exec(pathname)?.[1]).find(Boolean) ?? null;
  }

  start({
    service: "asana",
    places: [
      {
        name: "board-card",
        selector: ".BoardCardLayout[data-task-id]",
        externalId: (card) => card.getAttribute("data-task-id"),
        title: (card) => text(card.querySelector(".BoardCard-taskName")),
        mount: (card) => card.querySelector(".BoardCardLayout-actionButtons") ?? card,
      },
      {
        name: "list-row",
        selector: ".SpreadsheetRow",
        externalId: (row) => idAfterUnderscore(row.querySelector("textarea.SpreadsheetTaskName-input")?.id),
        title: (row) => text(row.querySelector("textarea.SpreadsheetTaskName-input")),
        mount: (row) => row.querySelector(".SpreadsheetTaskName") ?? row,
      },
      {
        name: "task-pane",
        selector: ".TaskPane",
        externalId: (pane) => pane.getAttribute("data-task-id") || taskIdFromUrl(),
        title: (pane) => text(pane.querySelector(".TitleInput textarea, .TaskPaneTitle textarea")),
        mount: (pane) => pane.querySelector(".TaskPaneToolbarAnimation") ?? pane,
      },
      {
        name: "subtask-row",
        selector: ".TaskPane .ItemRowTwoColumnStructure-left",
        externalId: idFromRow,
        title: (row) => text(row.querySelector("textarea, a")),
      },
    ],
    pageItem: () => {
      const externalId = document.querySelector(".TaskPane[data-task-id]")?.getAttribute("data-task-id") || taskIdFromUrl();
      return externalId ? { externalId } : null;
    },
  });
})();

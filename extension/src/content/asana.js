// Asana (app.asana.com): where tasks are on the page and how to read their gid.
// Asana's React class names change with redesigns; they live here only, and ids come from
// `data-task-id` attributes, element ids and URLs wherever those exist.
(() => {
  "use strict";
  const { start, text, idAfterUnderscore } = globalThis.TasktimerButtons;

  const GID = "(\\d{6,})";
  // Where a task pane's gid is in the URL, most specific first. Old `/0/…` links stay
  // valid beside the V1 `/1/<workspace>/…` forms.
  const TASK_PATHS = [
    new RegExp(`^/1/\\d+/(?:project/\\d+/)?task/${GID}`), // V1 project and bare task
    new RegExp(`^/0/search/[^/]+/${GID}`), // search results
    new RegExp(`^/0/home/[^/]+/${GID}`), // home
    new RegExp(`^/0/inbox/\\d+/${GID}`), // inbox thread, optionally /<story>
    new RegExp(`^/0/\\d+/${GID}(?:/f)?/?$`), // old /0/<project>/<task>[/f]
  ];

  /** The gid of the task a URL opens, `?child=` (a subtask opened in the pane) first. */
  function taskIdFromUrl(href = location.href) {
    const url = new URL(href, location.href);
    const child = url.searchParams.get("child");
    if (child && /^\d+$/.test(child)) return child;
    for (const pattern of TASK_PATHS) {
      const match = pattern.exec(url.pathname);
      if (match) return match[1];
    }
    return null;
  }

  function idFromLink(node) {
    const href = node.querySelector("a[href]")?.getAttribute("href");
    return href ? taskIdFromUrl(href) : null;
  }

  // A list row: the editable title's element id ends with `_<gid>`; read-only
  // ("comment only") rows have no title textarea, so the row's own attributes or link.
  function listRowId(row) {
    return (
      idAfterUnderscore(row.querySelector("textarea.SpreadsheetTaskName-input")?.id) ||
      row.getAttribute("data-task-id") ||
      row.querySelector("[data-task-id]")?.getAttribute("data-task-id") ||
      idFromLink(row)
    );
  }

  // A subtask row carries the id itself or inherits it from its nearest [data-task-id]
  // ancestor inside the subtask list (never from the pane around it).
  function subtaskId(row) {
    const own = row.getAttribute("data-task-id");
    if (own) return own;
    const holder = row.parentElement?.closest("[data-task-id]");
    if (holder && holder.closest(".SubtaskGrid, .TaskList") && !holder.matches(".TaskPane")) {
      return holder.getAttribute("data-task-id");
    }
    return (
      idAfterUnderscore(row.querySelector(".SubtaskTaskRow-taskName textarea")?.id) || idFromLink(row)
    );
  }

  const PANE_TITLE = ".TitleInput .SimpleTextarea, .TitleInput textarea, .TaskPaneTitle textarea, [role='heading'] textarea";

  function paneId(pane) {
    // `?child=` opens a subtask in the same pane element: the URL is the fresher source.
    const child = new URL(location.href).searchParams.get("child");
    return (child && /^\d+$/.test(child) ? child : null) || pane.getAttribute("data-task-id") || taskIdFromUrl();
  }

  start({
    service: "asana",
    hosts: ["app.asana.com"],
    places: [
      {
        name: "board-card",
        selector: ".BoardCardLayout[data-task-id]",
        externalId: (card) => card.getAttribute("data-task-id"),
        title: (card) => text(card.querySelector(".BoardCard-taskName")),
        mount: (card) => card.querySelector(".BoardCardLayout-actionButtons") ?? card,
      },
      {
        // Project lists and My Tasks share the spreadsheet rows.
        name: "list-row",
        selector: ".SpreadsheetRow",
        externalId: listRowId,
        title: (row) => text(row.querySelector("textarea.SpreadsheetTaskName-input, .SpreadsheetTaskName")),
        mount: (row) => row.querySelector(".SpreadsheetTaskName") ?? row,
      },
      {
        name: "task-pane",
        selector: ".TaskPane",
        externalId: paneId,
        title: (pane) => text(pane.querySelector(PANE_TITLE)),
        mount: (pane) => {
          const bar = pane.querySelector(".TaskPaneToolbarAnimation-row, .TaskPaneToolbar, .TaskPaneToolbarAnimation");
          if (!bar) return pane;
          // Before the "…" menu where there is one, so our button sits with the actions.
          const extra = bar.querySelector(".TaskPaneExtraActionsButton");
          return extra ? { parent: extra.parentElement, before: extra } : bar;
        },
      },
      {
        name: "subtask-row",
        selector: ".TaskPane .SubtaskTaskRow",
        externalId: subtaskId,
        title: (row) => text(row.querySelector(".SubtaskTaskRow-taskName textarea, .SubtaskTaskRow-taskName")),
        mount: (row) =>
          row.querySelector(".SubtaskTaskRow-rightChildren, .SubtaskTaskRow-childContainer--rightChildren") ?? row,
      },
    ],
    pageItem: () => {
      const pane = document.querySelector(".TaskPane");
      const externalId = pane ? paneId(pane) : taskIdFromUrl();
      return externalId ? { externalId, title: pane ? text(pane.querySelector(PANE_TITLE)) : "" } : null;
    },
  });
})();

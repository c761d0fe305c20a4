// Pivotal Tracker (www.pivotaltracker.com and compatible servers): collapsed stories on the
// board carry a `story_<id>` class; an expanded story is a `form.story` whose id is shown
// in `.id.text_value` as "#<id>" (older pages: `.story .model_details`).
(() => {
  "use strict";
  const { start, text } = globalThis.TasktimerButtons;

  // /story/show/<id> and /n/projects/<project>/stories/<id>
  const STORY_URLS = [/^\/story\/show\/(\d+)/, /^\/n\/projects\/\d+\/stories\/(\d+)/];
  const storyIdFromClass = (node) => /(?:^|\s)story_(\d+)(?:\s|$)/.exec(node.className)?.[1] ?? null;
  const storyIdFromUrl = () => STORY_URLS.map((p) => p.exec(location.pathname)?.[1]).find(Boolean) ?? null;

  function expandedId(form) {
    const field = form.querySelector(".id.text_value");
    const shown = /#?(\d+)/.exec((field?.value ?? field?.textContent ?? "").trim())?.[1];
    const owner = form.closest('[class*="story_"]');
    return shown || (owner && storyIdFromClass(owner)) || form.getAttribute("data-id") || null;
  }

  start({
    service: "pivotaltracker",
    hosts: ["www.pivotaltracker.com"],
    places: [
      {
        // Collapsed story (board preview). An expanded story gets its button in the form.
        name: "story",
        selector: '[class*="story_"]',
        accept: (story) => !story.matches("form") && !story.querySelector("form.story, .model_details"),
        externalId: storyIdFromClass,
        title: (story) => text(story.querySelector(".story_name, .name, [data-aid='StoryPreviewItem__title']")),
        mount: (story) => story.querySelector("header") ?? story,
      },
      {
        name: "story-detail",
        selector: "form.story, .story .model_details",
        externalId: (form) => expandedId(form) || storyIdFromUrl(),
        title: (form) => text(form.querySelector(".name textarea, .name")),
        mount: (form) => {
          const side = form.querySelector(".edit aside, aside > .wrapper, aside");
          return side ? { parent: side, before: side.firstChild } : form;
        },
      },
    ],
    pageItem: () => {
      const form = document.querySelector("form.story");
      const externalId = (form && expandedId(form)) || storyIdFromUrl();
      return externalId ? { externalId } : null;
    },
  });
})();

// Pivotal Tracker (www.pivotaltracker.com): every story element carries a `story_<id>`
// class, on the board and on a story's own page.
(() => {
  "use strict";
  const { start, text } = globalThis.TasktimerButtons;

  // /story/show/<id> and /n/projects/<project>/stories/<id>
  const STORY_URLS = [/^\/story\/show\/(\d+)/, /^\/n\/projects\/\d+\/stories\/(\d+)/];
  const storyIdFromClass = (node) => /(?:^|\s)story_(\d+)(?:\s|$)/.exec(node.className)?.[1] ?? null;

  start({
    service: "pivotaltracker",
    places: [
      {
        name: "story",
        selector: '[class*="story_"]',
        externalId: storyIdFromClass,
        title: (story) => text(story.querySelector(".story_name, .name, [data-aid='StoryPreviewItem__title']")),
        mount: (story) => story.querySelector("header") ?? story,
      },
    ],
    pageItem: () => {
      const externalId = STORY_URLS.map((p) => p.exec(location.pathname)?.[1]).find(Boolean);
      return externalId ? { externalId } : null;
    },
  });
})();

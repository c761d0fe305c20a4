// The user's site settings, shared by the options page and the service worker. Content
// scripts read the saved result (`sites`, `customHosts`) straight from chrome.storage.

/**
 * @typedef {{service: string, origin: string, hostname: string, pattern: string}} CustomHost
 * @typedef {{sites: Record<string, boolean>, customHosts: CustomHost[], customHostsText: string}} Settings
 */

export const SERVICES = ["heyspace", "asana", "pivotaltracker"];

/**
 * Parses the custom-hosts text: one `service=https://host` per line; blank lines and
 * `#` comments are skipped. Returns the hosts and one message per line it could not use.
 * @returns {{hosts: CustomHost[], errors: string[]}}
 */
export function parseCustomHosts(text) {
  const hosts = [];
  const errors = [];
  const seen = new Set();
  for (const [index, raw] of String(text ?? "").split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    const service = line.slice(0, Math.max(0, eq)).trim().toLowerCase();
    const address = line.slice(eq + 1).trim();
    if (eq < 0 || !SERVICES.includes(service)) {
      errors.push(`Line ${index + 1}: start with one of ${SERVICES.join(", ")} followed by "=".`);
      continue;
    }
    let url;
    try {
      url = new URL(address.includes("://") ? address : `https://${address}`);
    } catch {
      errors.push(`Line ${index + 1}: "${address}" is not a web address.`);
      continue;
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      errors.push(`Line ${index + 1}: only http:// and https:// addresses can be used.`);
      continue;
    }
    // Match patterns name a host, not a port: the permission covers the host.
    const pattern = `${url.protocol}//${url.hostname}/*`;
    const key = `${service} ${pattern}`;
    if (seen.has(key)) continue;
    seen.add(key);
    hosts.push({ service, origin: `${url.protocol}//${url.hostname}`, hostname: url.hostname, pattern });
  }
  return { hosts, errors };
}

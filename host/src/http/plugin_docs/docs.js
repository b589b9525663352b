// Renders the OpenAPI documents of the mounted plugins (/polypay/plugins/index.json).
// The documents come from plugins: every string is inserted as text, never as markup.
"use strict";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// Text with `code` spans (as OpenAPI descriptions use them) as nodes: still text only.
function prose(text) {
  const node = document.createElement("span");
  String(text).split("`").forEach((part, i) => {
    node.append(i % 2 ? el("code", {}, part) : document.createTextNode(part));
  });
  return node;
}

// Follows a local "#/components/..." reference; anything else is shown as it is.
function resolve(doc, item) {
  let seen = 0;
  while (item && typeof item.$ref === "string" && item.$ref.startsWith("#/") && seen++ < 16) {
    item = item.$ref.slice(2).split("/").reduce((node, key) => (node ? node[key] : undefined), doc);
  }
  return item || {};
}

function schemaBlock(doc, content) {
  if (!content) return null;
  const blocks = [];
  for (const [mediaType, media] of Object.entries(content)) {
    const schema = media && media.schema ? expand(doc, media.schema, 0) : {};
    blocks.push(el("div", { class: "media" }, el("span", { class: "type" }, mediaType),
      el("pre", {}, JSON.stringify(media && media.example !== undefined ? media.example : schema, null, 2))));
  }
  return el("div", {}, ...blocks);
}

// A schema with its local references replaced (bounded depth), for display.
function expand(doc, schema, depth) {
  if (depth > 6 || schema === null || typeof schema !== "object") return schema;
  if (typeof schema.$ref === "string") return expand(doc, resolve(doc, schema), depth + 1);
  if (Array.isArray(schema)) return schema.map((s) => expand(doc, s, depth + 1));
  const out = {};
  for (const [key, value] of Object.entries(schema)) out[key] = expand(doc, value, depth + 1);
  return out;
}

function operation(doc, path, method, op, shared) {
  const params = [...(shared || []), ...(op.parameters || [])].map((p) => resolve(doc, p));
  const body = op.requestBody ? resolve(doc, op.requestBody) : null;
  const details = el("details", { class: "op " + method },
    el("summary", {}, el("span", { class: "method" }, method.toUpperCase()),
      el("code", { class: "path" }, path), el("span", { class: "summary" }, op.summary || "")));
  if (op.description) details.append(el("p", {}, prose(op.description)));
  if (op.security && op.security.length) {
    details.append(el("p", { class: "auth" }, "Authentication: " +
      op.security.map((s) => Object.keys(s).join(" + ") || "none").join(" or ")));
  }
  if (params.length) {
    const rows = params.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name || "")),
      el("td", {}, p.in || ""), el("td", {}, p.required ? "required" : "optional"),
      el("td", {}, prose(p.description || ""))));
    details.append(el("h4", {}, "Parameters"),
      el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, ""), el("th", {}, "")), ...rows));
  }
  if (body) details.append(el("h4", {}, "Request body"), schemaBlock(doc, body.content));
  const responses = Object.entries(op.responses || {});
  if (responses.length) {
    details.append(el("h4", {}, "Responses"));
    for (const [status, raw] of responses) {
      const response = resolve(doc, raw);
      details.append(el("div", { class: "response" }, el("strong", {}, status + " "),
        prose(response.description || ""), schemaBlock(doc, response.content)));
    }
  }
  return details;
}

function renderDocument(plugin, doc) {
  const section = el("section", { id: "plugin-" + plugin.name });
  const info = doc.info || {};
  section.append(el("h2", {}, plugin.name + " ", el("small", {}, (info.title || "") + " " + (info.version || ""))));
  const servers = (doc.servers || []).map((s) => s.url).join(", ");
  section.append(el("p", { class: "meta" }, "Served at " + servers + " · plugin " + plugin.version +
    " · contract polypay:plugin@" + plugin.contract + " · ", el("a", { href: plugin.openapi }, "openapi.json")));
  if (info.description) section.append(el("p", {}, prose(info.description)));
  for (const [path, rawItem] of Object.entries(doc.paths || {})) {
    const item = resolve(doc, rawItem);
    for (const method of METHODS) {
      if (item[method]) section.append(operation(doc, path, method, item[method], item.parameters));
    }
  }
  return section;
}

function renderRoutesOnly(plugin) {
  const section = el("section", { id: "plugin-" + plugin.name });
  section.append(el("h2", {}, plugin.name + " ", el("small", {}, plugin.version)));
  section.append(el("p", { class: "note" }, "This plugin ships no OpenAPI document. Its routes:"));
  section.append(el("ul", {}, ...plugin.routes.map((r) => el("li", {}, el("code", {}, r.method + " " + r.path)))));
  return section;
}

async function main() {
  const docs = document.getElementById("docs");
  const nav = document.getElementById("plugins");
  try {
    const index = await (await fetch("/polypay/plugins/index.json")).json();
    docs.replaceChildren();
    if (!index.plugins.length) docs.append(el("p", { class: "note" }, "No plugin is mounted."));
    for (const plugin of index.plugins) {
      nav.append(el("a", { href: "#plugin-" + plugin.name }, plugin.name));
      if (!plugin.openapi) {
        docs.append(renderRoutesOnly(plugin));
        continue;
      }
      const doc = await (await fetch(plugin.openapi)).json();
      docs.append(renderDocument(plugin, doc));
    }
  } catch (error) {
    docs.replaceChildren(el("p", { class: "error" }, "Could not load the documents: " + error));
  }
}

main();

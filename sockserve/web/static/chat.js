// sockserve chat page: speaks the sockserve.v2.json subprotocol on /ws of
// its own origin. The page may be in several rooms at once and hold private
// conversations; each has a view of its own, listed in the sidebar with a
// count of the lines not yet seen. Everything other members send is shown
// as text (never as HTML: only DOM nodes and textContent, links included),
// and the page reconnects, with backoff, when the server goes away, taking
// its chosen name and its rooms again; it does not when the server says it
// should not (a full room, an idle timeout, /quit), and offers a button.
"use strict";

(function () {
  const SUBPROTOCOL = "sockserve.v2.json";
  const FIRST_RETRY_MS = 500;
  const LAST_RETRY_MS = 8000;
  // A connection that lasted this long starts the backoff over.
  const LASTED_MS = 10000;
  const MAX_SHOWN = 2000; // lines kept in each conversation
  const DIRECTORY_EVERY_MS = 30000; // how often a shown room list is asked for
  // ... while the person did something on the page this recently: a page
  // left alone sends nothing, and --idle-timeout still applies to it.
  const ACTIVE_MS = 120000;
  // A log scrolled to within this many pixels of its end follows new lines.
  const FOLLOW_PX = 24;
  // Where the chosen name is kept for the tab's session (nothing else is).
  const NAME_KEY = "sockserve.name";
  const TITLE = document.title;

  const state = document.getElementById("state");
  const reconnectButton = document.getElementById("reconnect");
  const menu = document.getElementById("menu");
  const sidebar = document.getElementById("sidebar");
  const viewList = document.getElementById("views");
  const joinForm = document.getElementById("join");
  const roomBox = document.getElementById("room");
  const directory = document.getElementById("directory");
  const directoryMore = document.getElementById("directory-more");
  const refresh = document.getElementById("refresh");
  const renameForm = document.getElementById("rename");
  const nameBox = document.getElementById("name");
  const panel = document.getElementById("panel");
  const title = document.getElementById("title");
  const logs = document.getElementById("logs");
  const jump = document.getElementById("jump");
  const sendForm = document.getElementById("send");
  const message = document.getElementById("message");
  const peopleTitle = document.getElementById("people-title");
  const members = document.getElementById("members");
  const peopleNote = document.getElementById("people-note");
  const accountBox = document.getElementById("account");
  const loginForm = document.getElementById("login");
  const loginName = document.getElementById("login-name");
  const loginPassword = document.getElementById("login-password");
  const loginError = document.getElementById("login-error");
  const loggedInBox = document.getElementById("logged-in");
  const accountName = document.getElementById("account-name");
  const logoutButton = document.getElementById("logout");

  let socket = null;
  let retryMs = FIRST_RETRY_MS;
  let openedAt = 0; // when the connection opened (0: it did not)
  let lastError = ""; // the last error the server sent on this connection
  let connectedBefore = false; // a welcome is then a reconnection
  let myName = "";
  let chosenName = storedName(); // taken again on reconnect, and on reload
  let restoring = false; // the /nick that takes the chosen name again
  let renaming = false; // a /nick from the name box, not answered yet
  let bannerShown = false; // the banner is shown once per page load
  let pendingBanner = null; // the banner, shown once we know where
  let maxLine = 0; // the longest message the server takes (0: not told)
  let serverOffsetMs = 0; // the server's clock less the page's
  // Views by key: "#room" (lower case) for a room, "@name" for a person.
  const views = new Map();
  const rejoining = new Set(); // rooms joined again after a reconnection
  const quietWho = new Map(); // room key: /who answers the page asked for
  let quietRooms = 0; // /rooms answers the page asked for
  let listed = []; // the last /rooms answer: [{name, members}]
  let listedTotal = 0;
  let lastActive = Date.now();
  // The account the page's login (its cookie, which scripts cannot read)
  // is for, as /session last said: null for none.
  let account = null;
  // The connection is closed to come back at once, logged in.
  let relogging = false;

  function storedName() {
    try {
      return sessionStorage.getItem(NAME_KEY) || "";
    } catch (error) {
      return ""; // storage refused: the name lasts as long as the page
    }
  }

  function storeName(name) {
    try {
      sessionStorage.setItem(NAME_KEY, name);
    } catch (error) {
      // Not kept, then.
    }
  }

  function roomKey(name) {
    return "#" + name.replace(/^#/, "").toLowerCase();
  }

  function personKey(name) {
    return "@" + name.toLowerCase();
  }

  function othersHere(others) {
    if (others === 0) {
      return "nobody else here";
    }
    return others === 1 ? "1 other here" : `${others} others here`;
  }

  function isOpen() {
    return socket !== null && socket.readyState === WebSocket.OPEN;
  }

  function send(line) {
    if (isOpen()) {
      socket.send(line);
      return true;
    }
    return false;
  }

  // The view shown when the page is in no room and holds no conversation.
  const home = makeLog("No room");

  // A view's log follows its newest line until the reader scrolls up;
  // then new lines leave it where it is, and the marker says they came.
  function makeLog(label) {
    const log = document.createElement("ol");
    log.className = "log";
    log.hidden = true;
    log.setAttribute("aria-label", label);
    log.setAttribute("aria-live", "polite");
    logs.append(log);
    const view = {
      kind: "none", key: "", name: "", log, unread: 0,
      follow: true, // showing the newest line
      missed: 0, // lines come since the reader scrolled up
      top: 0, // where the reader left it, while hidden
      heard: [], // what was said here, as "from\ntext", oldest first
    };
    log.addEventListener("scroll", () => {
      if (log.hidden) {
        return;
      }
      view.follow = nearEnd(log);
      if (view.follow) {
        view.missed = 0;
      }
      if (view === current) {
        showJump();
      }
    }, { passive: true });
    return view;
  }

  function nearEnd(log) {
    return log.scrollHeight - log.scrollTop - log.clientHeight <= FOLLOW_PX;
  }

  function toEnd(view) {
    view.follow = true;
    view.missed = 0;
    view.log.scrollTop = view.log.scrollHeight;
    if (view === current) {
      showJump();
    }
  }

  function showJump() {
    jump.hidden = current.follow || current.missed === 0;
    jump.textContent = `New messages (${current.missed}) ↓`;
  }

  let current = home;

  // Views

  function makeView(kind, name) {
    const view = makeLog(kind === "room"
      ? `Conversation in #${name}` : `Private conversation with ${name}`);
    view.kind = kind;
    view.key = kind === "room" ? roomKey(name) : personKey(name);
    view.names = [];
    view.total = 0;
    view.joined = kind === "person";
    view.item = document.createElement("li");
    view.item.className = kind;
    view.open = document.createElement("button");
    view.open.type = "button";
    view.open.className = "open";
    view.label = document.createElement("span");
    view.label.className = "label";
    view.badge = document.createElement("span");
    view.badge.className = "unread";
    view.badge.hidden = true;
    view.open.append(view.label, view.badge);
    view.close = document.createElement("button");
    view.close.type = "button";
    view.close.className = "close";
    view.close.textContent = "×";
    view.item.append(view.open, view.close);
    view.open.addEventListener("click", () => {
      select(view);
      closeMenu();
    });
    view.close.addEventListener("click", () => leave(view));
    nameView(view, name);
    if (kind === "room") {
      const firstPerson = viewList.querySelector("li.person");
      viewList.insertBefore(view.item, firstPerson);
    } else {
      viewList.append(view.item);
    }
    views.set(view.key, view);
    return view;
  }

  function nameView(view, name) {
    view.name = name;
    if (view.kind === "room") {
      view.label.textContent = `#${name}`;
      view.close.setAttribute("aria-label", `Leave #${name}`);
      view.close.title = `Leave #${name}`;
      view.log.setAttribute("aria-label", `Conversation in #${name}`);
    } else {
      view.label.textContent = name;
      view.close.setAttribute("aria-label", `Close the conversation with ${name}`);
      view.close.title = `Close the conversation with ${name}`;
      view.log.setAttribute("aria-label", `Private conversation with ${name}`);
    }
    if (view === current) {
      showTitle();
    }
  }

  function roomView(name) {
    return views.get(roomKey(name)) || makeView("room", name);
  }

  function personView(name) {
    return views.get(personKey(name)) || makeView("person", name);
  }

  function showTitle() {
    title.title = current.kind === "room" && current.topic ? current.topic : "";
    if (current.kind === "room") {
      title.textContent = `#${current.name}`;
      message.placeholder = `Message #${current.name}, or /help`;
    } else if (current.kind === "person") {
      title.textContent = `${current.name} (private)`;
      message.placeholder = `Message ${current.name} privately`;
    } else {
      title.textContent = "You are in no room: join one";
      message.placeholder = "Say something, or /help";
    }
  }

  function select(view) {
    if (current.item) {
      current.open.removeAttribute("aria-current");
      current.item.classList.remove("current");
    }
    if (!current.log.hidden) {
      current.top = current.log.scrollTop;
    }
    current.log.hidden = true;
    current = view;
    view.log.hidden = false;
    if (view.item) {
      view.open.setAttribute("aria-current", "true");
      view.item.classList.add("current");
      reveal(viewList, view.item);
    }
    setUnread(view, 0);
    showTitle();
    showMembers();
    if (view.follow) {
      view.log.scrollTop = view.log.scrollHeight;
    } else {
      view.log.scrollTop = view.top;
    }
    showJump();
  }

  // Scroll box (and nothing around it, the page included) so that item
  // is in it.
  function reveal(box, item) {
    const outer = box.getBoundingClientRect();
    const inner = item.getBoundingClientRect();
    if (inner.top < outer.top) {
      box.scrollTop -= outer.top - inner.top;
    } else if (inner.bottom > outer.bottom) {
      box.scrollTop += inner.bottom - outer.bottom;
    }
  }

  function removeView(view) {
    const wasCurrent = view === current;
    const next = view.item.previousElementSibling || view.item.nextElementSibling;
    view.log.remove();
    view.item.remove();
    views.delete(view.key);
    if (wasCurrent) {
      current = home; // gone: nothing to hide
      let chosen = home;
      for (const other of views.values()) {
        if (other.item === next) {
          chosen = other;
        }
      }
      select(chosen);
    }
    showUnreadTotal();
  }

  // Leave a room (the server answers with "parted"), or close a
  // conversation, or forget a room the page is not in now.
  function leave(view) {
    if (view.kind === "room" && view.joined && isOpen()) {
      send(`/part ${view.name}`);
    } else {
      removeView(view);
      showDirectory();
    }
  }

  function setUnread(view, count) {
    view.unread = count;
    if (view.badge) {
      view.badge.textContent = String(count);
      view.badge.title = `${count} unread`;
      view.badge.hidden = count === 0;
    }
    showUnreadTotal();
  }

  function showUnreadTotal() {
    let unread = 0;
    for (const view of views.values()) {
      unread += view.unread;
    }
    document.title = unread ? `(${unread}) ${TITLE}` : TITLE;
  }

  // Something new was said in a view: count it if the view is not shown.
  function said(view) {
    if (view !== current) {
      setUnread(view, view.unread + 1);
    }
  }

  function showRoomState(view) {
    view.item.classList.toggle("away", !view.joined);
    view.open.title = view.joined ? "" : `not in #${view.name} now`;
  }

  // What the server's clock says now, in Unix seconds (the page's own
  // clock may be off: it follows the times the server's events carry).
  function serverNow() {
    return (Date.now() + serverOffsetMs) / 1000;
  }

  function heardTime(event) {
    if (typeof event.at === "number") {
      serverOffsetMs = event.at * 1000 - Date.now();
    }
  }

  // When a line was said: hours and minutes in the reader's time zone,
  // shown by the style sheet (not part of the line's text), the full date
  // and time on hovering.
  function timeOf(seconds) {
    const when = new Date(seconds * 1000);
    const stamp = document.createElement("time");
    stamp.dateTime = when.toISOString();
    stamp.dataset.shown = when.toLocaleTimeString([], {
      hour: "2-digit", minute: "2-digit",
    });
    stamp.title = when.toLocaleString();
    return stamp;
  }

  // The http and https addresses in a line; punctuation after one is the
  // sentence's, not the address's (unless it closes a bracket the address
  // opened).
  const ADDRESS = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  const CLOSING = { ")": "(", "]": "[" };

  function trimAddress(found) {
    let end = found.length;
    while (end > 0) {
      const last = found[end - 1];
      if (".,;:!?'\"*".includes(last)) {
        end -= 1;
      } else if (Object.hasOwn(CLOSING, last)) {
        const kept = found.slice(0, end);
        const opened = kept.split(CLOSING[last]).length - 1;
        const closed = kept.split(last).length - 1;
        if (closed <= opened) {
          break;
        }
        end -= 1;
      } else {
        break;
      }
    }
    return found.slice(0, end);
  }

  // Append text to element, its http and https addresses as links that open
  // in a new tab and tell the other site nothing of this page; everything
  // else as text. Only DOM nodes are made: nothing is parsed as HTML.
  function appendText(element, text) {
    let from = 0;
    for (const found of text.matchAll(ADDRESS)) {
      const address = trimAddress(found[0]);
      let url = null;
      try {
        url = new URL(address);
      } catch (error) {
        url = null;
      }
      if (url === null || (url.protocol !== "http:" && url.protocol !== "https:")) {
        continue;
      }
      if (found.index > from) {
        element.append(document.createTextNode(text.slice(from, found.index)));
      }
      const link = document.createElement("a");
      link.href = url.href;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      link.textContent = address;
      element.append(link);
      from = found.index + address.length;
    }
    if (from < text.length) {
      element.append(document.createTextNode(text.slice(from)));
    }
  }

  // Show a line in a view: when it was said (at, by the server's clock, if
  // known), who said it, and its text. A notice of several lines (/help)
  // is shown as the server laid it out, in a monospace block.
  // A line said is remembered as heardAs ("sender\ntext"), so that a
  // history told again after a reconnection shows only what is new.
  function show(view, className, sender, text, at,
    heardAs = sender === null ? null : `${sender}\n${text}`) {
    const item = document.createElement("li");
    item.className = className;
    if (typeof at === "number") {
      item.append(timeOf(at));
    }
    if (sender !== null) {
      const who = document.createElement("span");
      who.className = "sender";
      who.textContent = sender;
      item.append(who);
    }
    if (heardAs !== null) {
      view.heard.push(heardAs);
      if (view.heard.length > MAX_SHOWN) {
        view.heard.shift();
      }
    }
    if (className === "notice" && text.includes("\n")) {
      item.classList.add("block");
      const block = document.createElement("pre");
      appendText(block, text);
      item.append(block);
    } else {
      const body = document.createElement("span");
      body.className = "text";
      appendText(body, text);
      item.append(body);
    }
    append(view, item);
  }

  // Add item at the end of a view's log: in sight if the log follows its
  // newest line; else counted for the "new messages" marker, the view left
  // where the reader has it.
  function append(view, item) {
    const log = view.log;
    log.append(item);
    while (log.childElementCount > MAX_SHOWN) {
      const first = log.firstElementChild;
      const height = view.follow || log.hidden ? 0 : first.offsetHeight;
      first.remove();
      if (height) {
        log.scrollTop -= height;
      }
    }
    if (view.follow) {
      if (!log.hidden) {
        log.scrollTop = log.scrollHeight;
      }
    } else {
      view.missed += 1;
      if (view === current) {
        showJump();
      }
    }
  }

  // A room's topic: on its title, as its tooltip, and said once on
  // arriving (not again on a reconnection, unless it changed meanwhile).
  function showTopic(view, text) {
    view.topic = text;
    if (view === current) {
      title.title = text;
    }
  }

  function arrivedTopic(view, topic, again) {
    const text = topic && topic.text ? topic.text : "";
    if (text && !(again && view.topic === text)) {
      show(view, "notice", null, `topic: ${text} (set by ${topic.by})`);
    }
    showTopic(view, text);
  }

  // A line someone said (a message, a private one, one of history): an
  // action as "* alice waves", a notice (IRC's NOTICE) as "-alice- text".
  function showSaid(view, className, sender, line, at = line.at) {
    const heardAs = `${sender}\n${line.text}`;
    if (line.action) {
      show(view, `${className} action`, null, `* ${sender} ${line.text}`, at,
        heardAs);
    } else if (line.notice) {
      show(view, `${className} notice-said`, `-${sender}-`, line.text, at,
        heardAs);
    } else {
      show(view, className, sender, line.text, at, heardAs);
    }
  }

  // A line of one's own as the server shows it to everyone: control and
  // format characters (bidirectional overrides, zero-width characters, ...)
  // and line separators escaped (\x07, \u202e, \U000e0041), TAB kept,
  // trailing spaces dropped.
  const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

  function escaped(character) {
    if (character === "\t") {
      return character;
    }
    const code = character.codePointAt(0);
    const hex = code.toString(16);
    if (code < 0x100) {
      return "\\x" + hex.padStart(2, "0");
    }
    if (code < 0x10000) {
      return "\\u" + hex.padStart(4, "0");
    }
    return "\\U" + hex.padStart(8, "0");
  }

  function asServerShows(line) {
    return line.replace(UNSAFE, escaped).trimEnd();
  }

  const encoder = new TextEncoder();

  function bytesOf(text) {
    return encoder.encode(text).length;
  }

  // Members

  function byName(a, b) {
    return a.localeCompare(b);
  }

  function showMembers() {
    members.replaceChildren();
    peopleNote.textContent = "";
    if (current.kind === "person") {
      peopleTitle.firstChild.textContent = "Private ";
      document.getElementById("count").textContent = "";
      peopleNote.textContent =
        `Only you and ${current.name} see this conversation.`;
      return;
    }
    peopleTitle.firstChild.textContent = "Here ";
    const names = current.kind === "room" ? current.names : [];
    const total = current.kind === "room" ? current.total : 0;
    for (const name of names) {
      const item = document.createElement("li");
      if (name === myName) {
        item.className = "me";
        item.textContent = name;
      } else {
        const person = document.createElement("button");
        person.type = "button";
        person.className = "person";
        person.textContent = name;
        person.title = `Talk to ${name} privately`;
        person.addEventListener("click", () => talkTo(name));
        item.append(person);
      }
      members.append(item);
    }
    if (total > names.length) {
      const more = document.createElement("li");
      more.className = "more";
      more.textContent = `and ${total - names.length} more`;
      members.append(more);
    }
    document.getElementById("count").textContent = total ? `(${total})` : "";
    if (current.kind === "room" && !current.joined) {
      peopleNote.textContent = `You are not in #${current.name} now.`;
    }
  }

  function membersChanged(view) {
    if (view === current) {
      showMembers();
    }
    showDirectory();
  }

  function addMember(view, name) {
    if (!view.names.includes(name)) {
      view.names.push(name);
      view.names.sort(byName);
    }
    view.total = Math.max(view.total + 1, view.names.length);
  }

  function removeMember(view, name) {
    const index = view.names.indexOf(name);
    if (index >= 0) {
      view.names.splice(index, 1);
    }
    view.total = Math.max(view.total - 1, view.names.length);
  }

  function renameMember(view, oldName, newName) {
    view.names = view.names.map((name) => (name === oldName ? newName : name));
    view.names.sort(byName);
  }

  function talkTo(name) {
    select(personView(name));
    message.focus();
  }

  // Ask who is in a room, for its member list alone.
  function askWho(name) {
    const key = roomKey(name);
    if (send(`/who ${name}`)) {
      quietWho.set(key, (quietWho.get(key) || 0) + 1);
    }
  }

  // The list of all rooms

  function askRooms() {
    if (send("/rooms")) {
      quietRooms += 1;
    }
  }

  // The rooms with their populations, by name: those of the last /rooms
  // answer, and the page's own, whose populations it follows as they change.
  function showDirectory() {
    const shown = new Map();
    for (const room of listed) {
      shown.set(roomKey(room.name), { name: room.name, members: room.members });
    }
    for (const view of views.values()) {
      if (view.kind === "room" && view.joined && view.total > 0) {
        shown.set(view.key, { name: view.name, members: view.total });
      }
    }
    directory.replaceChildren();
    const keys = [...shown.keys()].sort();
    for (const key of keys) {
      const room = shown.get(key);
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "room";
      button.disabled = !isOpen();
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = `#${room.name}`;
      const population = document.createElement("span");
      population.className = "population";
      population.textContent = String(room.members);
      population.title = room.members === 1 ? "1 person" : `${room.members} people`;
      button.append(name, document.createTextNode(" "), population);
      const mine = views.get(key);
      if (mine && mine.joined) {
        item.className = "in";
        button.title = `Show #${room.name}`;
      } else {
        button.title = `Join #${room.name}`;
      }
      button.addEventListener("click", () => {
        const view = views.get(key);
        if (view && view.joined) {
          select(view);
          closeMenu();
        } else {
          send(`/join ${room.name}`);
        }
      });
      item.append(button);
      directory.append(item);
    }
    const more = listedTotal - listed.length;
    directoryMore.textContent = more > 0 ? `and ${more} more` : "";
  }

  function directoryWatched() {
    return document.visibilityState === "visible"
      && directory.getClientRects().length > 0
      && Date.now() - lastActive < ACTIVE_MS;
  }

  // The phone's menu (on a wide screen the panel is always there)

  function openMenu() {
    sidebar.classList.add("open");
    menu.setAttribute("aria-expanded", "true");
    askRooms();
  }

  function closeMenu() {
    sidebar.classList.remove("open");
    menu.setAttribute("aria-expanded", "false");
  }

  // Events from the server

  function arrivedIn(name) {
    const view = roomView(name);
    nameView(view, name);
    view.joined = true;
    view.names = [];
    view.total = 0;
    view.historyShown = false;
    showRoomState(view);
    return view;
  }

  // How many of a history's first lines the view heard already, in that
  // order, as the last it heard (after a reconnection, the history holds
  // those, then what was said while the page was away).
  function alreadyHeard(heard, lines) {
    for (let end = lines.length; end > 0; end -= 1) {
      const start = Math.max(0, end - heard.length);
      let same = true;
      for (let i = end - 1, j = heard.length - 1; i >= start; i -= 1, j -= 1) {
        if (lines[i] !== heard[j]) {
          same = false;
          break;
        }
      }
      if (same) {
        return end;
      }
    }
    return 0;
  }

  function linesSaid(count) {
    return count === 1 ? "1 line" : `${count} lines`;
  }

  const handlers = {
    banner(event) { pendingBanner = event.text; },
    welcome(event) {
      heardTime(event);
      myName = event.name;
      nameBox.value = myName;
      renaming = false;
      if (Number.isInteger(event.maxLine) && event.maxLine > 0) {
        maxLine = event.maxLine;
        message.maxLength = maxLine;
      }
      const again = connectedBefore;
      // Back after a reconnection: take the rooms the page was in again
      // (the server put it in its default room alone).
      const rooms = [];
      if (again) {
        for (const view of views.values()) {
          if (view.kind === "room") {
            rooms.push(view.name);
          }
        }
      }
      const key = roomKey(event.room);
      const stay = rooms.length === 0 || rooms.some((name) => roomKey(name) === key);
      const where = stay ? arrivedIn(event.room) : current;
      // The banner once per page load.
      if (pendingBanner !== null && !bannerShown) {
        show(where, "banner", null, pendingBanner);
        bannerShown = true;
      }
      pendingBanner = null;
      if (again) {
        show(current === home ? where : current, "notice", null,
          `reconnected as ${myName}`);
      } else {
        show(where, "notice", null,
          `you are ${myName} in #${event.room}; ${othersHere(event.others)}`);
      }
      if (stay) {
        arrivedTopic(where, event.topic, again);
      }
      if (account !== null && myName !== account) {
        // Back without the login (it expired, or the server restarted):
        // the account's name is not the page's to ask for.
        if (chosenName === account) {
          chosenName = myName;
          storeName(myName);
        }
        askSession();
      }
      if (chosenName && chosenName !== myName) {
        restoring = again;
        send(`/nick ${chosenName}`);
      }
      if (stay) {
        askWho(event.room);
      } else {
        send(`/part ${event.room}`);
      }
      for (const name of rooms) {
        if (roomKey(name) !== key) {
          rejoining.add(roomKey(name));
          send(`/join ${name}`);
        }
      }
      if (current === home && stay) {
        select(where);
      } else {
        showMembers();
      }
      connectedBefore = true;
      askRooms();
    },
    entered(event) {
      const key = roomKey(event.room);
      const again = rejoining.delete(key);
      const known = views.get(key);
      if (!known || !known.joined) {
        const view = arrivedIn(event.room);
        show(view, "notice", null, again
          ? `back in #${event.room}; ${othersHere(event.others)}`
          : `you are now in #${event.room}; ${othersHere(event.others)}`);
        arrivedTopic(view, event.topic, again);
        askWho(event.room);
      }
      if (!again) {
        select(views.get(key));
        closeMenu();
      }
      showDirectory();
    },
    topic(event) {
      const view = views.get(roomKey(event.room));
      if (view === undefined) {
        return;
      }
      const topic = event.topic;
      if (!event.changed) {
        show(view, "notice", null, topic && topic.text
          ? `the topic of #${view.name}: ${topic.text} (set by ${topic.by})`
          : `#${view.name} has no topic`);
      } else if (topic && topic.text) {
        show(view, "notice", null, `${topic.by} set the topic: ${topic.text}`);
      } else if (topic) {
        show(view, "notice", null, `${topic.by} cleared the topic`);
      }
      if (event.changed) {
        showTopic(view, topic && topic.text ? topic.text : "");
      }
    },
    parted(event) {
      const view = views.get(roomKey(event.room));
      if (view === undefined) {
        return;
      }
      // The room's population, as the page last knew it, less one.
      listed = listed.filter((room) => roomKey(room.name) !== view.key);
      if (view.total > 1) {
        listed.push({ name: view.name, members: view.total - 1 });
      }
      removeView(view);
      show(current, "notice", null, `you left #${event.room}`);
      showDirectory();
    },
    message(event) {
      heardTime(event);
      const view = views.get(roomKey(event.room));
      if (view !== undefined) {
        showSaid(view, "message", event.from, event);
        said(view);
      }
    },
    private(event) {
      heardTime(event);
      const view = personView(event.from);
      showSaid(view, "message private", event.from, event);
      said(view);
    },
    sent(event) {
      heardTime(event);
      const known = views.has(personKey(event.to));
      const view = personView(event.to);
      nameView(view, event.to);
      showSaid(view, "message own private", myName, event);
      if (!known) {
        select(view);
      }
    },
    history(event) {
      heardTime(event);
      const view = views.get(roomKey(event.room));
      // The server tells it again to a /join of a room the page is in.
      if (view === undefined || view.historyShown) {
        return;
      }
      view.historyShown = true;
      const lines = event.lines.map((line) => `${line.from}\n${line.text}`);
      if (view.heard.length > 0) {
        // Back after a reconnection: only what was said meanwhile.
        const fresh = event.lines.slice(alreadyHeard(view.heard, lines));
        if (fresh.length > 0) {
          show(view, "notice", null,
            `${linesSaid(fresh.length)} said here while you were away:`);
          for (const line of fresh) {
            showSaid(view, "message history", line.from, line);
          }
        }
        return;
      }
      const omitted = event.omitted
        ? ` (${event.omitted} earlier too long to show)` : "";
      show(view, "notice", null,
        `the last ${linesSaid(event.lines.length)} said here${omitted}:`);
      for (const line of event.lines) {
        showSaid(view, "message history", line.from, line);
      }
      show(view, "notice", null, "(end of history)");
    },
    joined(event) {
      heardTime(event);
      const view = views.get(roomKey(event.room));
      if (view !== undefined) {
        addMember(view, event.name);
        show(view, "notice", null, `${event.name} joined`, event.at);
        membersChanged(view);
      }
    },
    left(event) {
      heardTime(event);
      const view = views.get(roomKey(event.room));
      if (view !== undefined) {
        removeMember(view, event.name);
        show(view, "notice", null, `${event.name} left`, event.at);
        membersChanged(view);
      }
    },
    quietly(event) {
      const view = views.get(roomKey(event.room));
      if (view === undefined) {
        return;
      }
      for (const name of event.joined) {
        addMember(view, name);
      }
      for (const name of event.left) {
        removeMember(view, name);
      }
      if (event.joined.length) {
        show(view, "notice", null,
          `${event.joined.length} member(s) joined quietly: ${event.joined.join(", ")}`);
      }
      if (event.left.length) {
        show(view, "notice", null,
          `${event.left.length} member(s) left quietly: ${event.left.join(", ")}`);
      }
      membersChanged(view);
    },
    renamed(event) {
      const view = views.get(roomKey(event.room));
      if (view !== undefined) {
        renameMember(view, event.from, event.to);
        show(view, "notice", null, `${event.from} is now known as ${event.to}`);
        membersChanged(view);
      }
      // A conversation with them follows them to their new name.
      const talk = views.get(personKey(event.from));
      if (talk !== undefined && !views.has(personKey(event.to))) {
        views.delete(talk.key);
        talk.key = personKey(event.to);
        views.set(talk.key, talk);
        nameView(talk, event.to);
        show(talk, "notice", null, `${event.from} is now known as ${event.to}`);
        if (talk === current) {
          showMembers();
        }
      }
    },
    name(event) {
      const oldName = myName;
      myName = event.name;
      chosenName = myName;
      storeName(myName);
      nameBox.value = myName;
      renaming = false;
      for (const view of views.values()) {
        if (view.kind === "room") {
          renameMember(view, oldName, myName);
        }
      }
      showMembers();
      if (!restoring) {
        show(current, "notice", null, `you are now known as ${myName}`);
      }
      restoring = false;
    },
    members(event) {
      const key = roomKey(event.room);
      const view = views.get(key);
      if (view !== undefined) {
        view.names = event.names.slice().sort(byName);
        view.total = event.total;
        membersChanged(view);
      }
      const quiet = quietWho.get(key) || 0;
      if (quiet > 0) {
        quietWho.set(key, quiet - 1);
        return;
      }
      // Typed: answered where it was typed.
      const more = event.total > event.names.length
        ? ` and ${event.total - event.names.length} more` : "";
      show(current, "notice", null,
        `${event.total} here in #${event.room}: ${event.names.join(", ")}${more}`);
    },
    rooms(event) {
      listed = event.rooms.slice();
      listedTotal = event.total;
      showDirectory();
      if (quietRooms > 0) {
        quietRooms -= 1;
        return;
      }
      const shown = event.rooms.map((room) => `#${room.name} (${room.members})`);
      const more = event.total > event.rooms.length
        ? ` and ${event.total - event.rooms.length} more` : "";
      show(current, "notice", null,
        `${event.total} room(s): ${shown.join(", ")}${more}`);
    },
    notice(event) { show(current, "notice", null, event.text); },
    error(event) {
      lastError = event.text;
      show(current, "error", null, event.text);
      // A name refused: the box shows the name the page has.
      if (renaming || restoring) {
        renaming = false;
        restoring = false;
        nameBox.value = myName;
      }
    },
  };

  // The connection

  function setState(kind, text) {
    state.dataset.state = kind;
    state.textContent = text;
    reconnectButton.hidden = kind !== "closed";
    const open = kind === "connected";
    for (const box of [message, nameBox, roomBox]) {
      box.disabled = !open;
    }
    for (const button of document.querySelectorAll(
      "form:not(#login) button, #refresh")) {
      button.disabled = !open;
    }
    for (const button of directory.querySelectorAll("button")) {
      button.disabled = !open;
    }
  }

  // /ws on the page's own origin: http becomes ws, https becomes wss.
  function socketAddress() {
    const address = new URL("/ws", location.href);
    address.protocol = address.protocol.replace("http", "ws");
    return address.href;
  }

  // The refusals a close reason names (with 1013, try again later).
  const REFUSED = {
    full: "the room is full",
    busy: "the server is busy",
    per_ip: "too many connections from your address",
  };

  // Why the server closed the connection, when that means the page should
  // not come back by itself (the person may, with the Reconnect button):
  // they left (/quit, 1000), were idle too long or broke a rule (1008), or
  // were refused for lack of room or a limit (1013, except "unavailable",
  // which passes). Anything else (the server going away, the network) is
  // retried with backoff: null.
  function stopReason(code, reason) {
    if (code === 1000) {
      return "you left the chat";
    }
    if (code === 1008) {
      return lastError || reason || "closed by the server";
    }
    if (code === 1013 && reason !== "unavailable") {
      return lastError || REFUSED[reason] || "refused by the server";
    }
    return null;
  }

  function connect() {
    const first = !connectedBefore && retryMs === FIRST_RETRY_MS;
    setState(first ? "connecting" : "reconnecting",
      first ? "connecting…" : "reconnecting…");
    lastError = "";
    socket = new WebSocket(socketAddress(), [SUBPROTOCOL]);
    socket.addEventListener("open", () => {
      openedAt = Date.now();
      setState("connected", "connected");
    });
    socket.addEventListener("message", (frame) => {
      let event;
      try {
        event = JSON.parse(frame.data);
      } catch (error) {
        return;
      }
      const handle = event !== null && Object.hasOwn(handlers, event.type)
        ? handlers[event.type] : undefined;
      if (handle) {
        handle(event);
      }
    });
    socket.addEventListener("close", (closed) => {
      socket = null;
      if (relogging) {
        // Closed by the page itself to come back with its new login.
        relogging = false;
        retryMs = FIRST_RETRY_MS;
        connect();
        return;
      }
      // Only a connection that lasted starts the backoff over: one that
      // the server takes and drops at once waits longer each time.
      if (openedAt !== 0 && Date.now() - openedAt >= LASTED_MS) {
        retryMs = FIRST_RETRY_MS;
      }
      openedAt = 0;
      rejoining.clear();
      quietWho.clear();
      quietRooms = 0;
      pendingBanner = null;
      renaming = false;
      restoring = false;
      for (const view of views.values()) {
        if (view.kind === "room") {
          view.joined = false;
          view.names = [];
          view.total = 0;
          showRoomState(view);
        }
      }
      showMembers();
      const stop = stopReason(closed.code, closed.reason);
      if (stop !== null) {
        setState("closed", `not connected: ${stop}`);
        // A banned account's login ended with it: the form says so.
        askSession();
        return;
      }
      const wait = retryMs;
      retryMs = Math.min(retryMs * 2, LAST_RETRY_MS);
      const why = closed.reason ? ` (${closed.reason})` : "";
      setState("reconnecting",
        `disconnected${why}; reconnecting in ${wait / 1000} s…`);
      setTimeout(connect, wait);
    });
  }

  // The login. The password goes to /session in a POST's body (never in a
  // URL, never kept by the page); the server answers with a cookie that
  // scripts cannot read, which the WebSocket then carries.

  function showAccount(session) {
    account = session.account || null;
    accountBox.hidden = !session.accounts;
    loginForm.hidden = account !== null;
    loggedInBox.hidden = account === null;
    accountName.textContent = account === null ? "" : `logged in as ${account}`;
  }

  async function askSession() {
    try {
      const answer = await fetch("/session",
        { cache: "no-store", credentials: "same-origin" });
      if (answer.ok) {
        showAccount(await answer.json());
      }
    } catch (error) {
      // No answer: the page shows what it knew.
    }
  }

  // Send a request to /session; return [ok, the answer's JSON or {}].
  async function session(method, body) {
    const options = { method, cache: "no-store", credentials: "same-origin" };
    if (body !== undefined) {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(body);
    }
    let answer;
    try {
      answer = await fetch("/session", options);
    } catch (error) {
      return [false, { error: "the server cannot be reached; try again" }];
    }
    let said = {};
    try {
      said = await answer.json();
    } catch (error) {
      // Not JSON: said in the status alone.
    }
    if (!answer.ok && !said.error) {
      said = { error: `the server said ${answer.status}` };
    }
    return [answer.ok, said];
  }

  // Come back logged in (or as a guest): the WebSocket carries the login
  // from its handshake on.
  function reconnectNow() {
    if (socket === null) {
      retryMs = FIRST_RETRY_MS;
      connect();
    } else {
      relogging = true;
      socket.close(1000);
    }
  }

  // Log in (from the form, or a /login typed in the message box); return
  // the error, or null once logged in.
  async function logIn(name, password) {
    loginError.textContent = "";
    const button = loginForm.querySelector("button");
    button.disabled = true;
    const [ok, said] = await session("POST", { name, password });
    button.disabled = false;
    if (!ok) {
      loginError.textContent = `not logged in: ${said.error}`;
      return said.error;
    }
    showAccount({ accounts: true, account: said.account });
    // The account's name is the page's from now on.
    chosenName = said.account;
    storeName(said.account);
    reconnectNow();
    return null;
  }

  loginForm.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const name = loginName.value.trim();
    const password = loginPassword.value;
    if (!name || !password) {
      return;
    }
    const error = await logIn(name, password);
    loginPassword.value = "";
    if (error !== null) {
      loginPassword.focus();
    }
  });

  // "/login NAME PASSWORD" as the server reads it (the password is what
  // follows the name and one space); null if it is not one.
  function typedLogin(text) {
    if (!text.startsWith("/login ")) {
      return null;
    }
    const rest = text.slice("/login ".length).replace(/^ +/, "");
    const space = rest.indexOf(" ");
    if (space <= 0 || space === rest.length - 1) {
      return null;
    }
    return [rest.slice(0, space), rest.slice(space + 1)];
  }

  async function logOut() {
    loginError.textContent = "";
    logoutButton.disabled = true;
    const [ok, said] = await session("DELETE");
    logoutButton.disabled = false;
    if (!ok) {
      loginError.textContent = `not logged out: ${said.error}`;
      return;
    }
    // The server logs out the page's connection (it says so, and gives it
    // a guest's name).
    showAccount({ accounts: true, account: null });
  }

  logoutButton.addEventListener("click", logOut);

  reconnectButton.addEventListener("click", () => {
    if (socket === null) {
      retryMs = FIRST_RETRY_MS;
      connect();
    }
  });

  // What the person does

  // Send commands (lines), as few messages as the server's --max-line
  // allows; none if one of them alone is too long (the server would close
  // the connection for it): say so, and return false.
  function sendLines(commands) {
    if (maxLine > 0) {
      for (const command of commands) {
        const size = bytesOf(command);
        if (size > maxLine) {
          show(current, "error", null,
            `not sent: that line is too long (${size} bytes with its command; `
            + `the server takes at most ${maxLine})`);
          return false;
        }
      }
    }
    let batch = [];
    let size = -1; // the bytes of batch joined by line feeds
    for (const command of commands) {
      const more = bytesOf(command) + 1;
      if (maxLine > 0 && batch.length && size + more > maxLine) {
        send(batch.join("\n"));
        batch = [];
        size = -1;
      }
      size += more;
      batch.push(command);
    }
    if (batch.length) {
      send(batch.join("\n"));
    }
    return true;
  }

  sendForm.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const text = message.value;
    if (!text || !isOpen()) {
      return;
    }
    if (account !== null && text.trim() === "/logout") {
      // Logged in with the form: the form's login ends.
      message.value = "";
      logOut();
      return;
    }
    const login = accountBox.hidden || account !== null ? null : typedLogin(text);
    if (login !== null) {
      // Logged in as the form does, so that a reload stays logged in.
      message.value = "";
      logIn(login[0], login[1]).then((error) => {
        if (error !== null) {
          show(current, "error", null, error);
        }
      });
      return;
    }
    if (text.startsWith("/") && !text.startsWith("//")) {
      // A command, as typed; /who and /part alone mean the room in view,
      // and /me and /topic act in it (the server's current room may be
      // another).
      const bare = text.trim();
      const inRoom = current.kind === "room";
      let command = text;
      if (inRoom && (bare === "/who" || bare === "/part")) {
        command = `${bare} ${current.name}`;
      } else if (inRoom && /^\/(me|topic)(\s|$)/.test(bare)) {
        command = `/say ${current.name} ${bare}`;
      }
      if (sendLines([command])) {
        message.value = "";
        toEnd(current);
        const action = bare.match(/^\/me\s+(.*)$/);
        if (inRoom && action !== null && asServerShows(action[1])) {
          showSaid(current, "message own", myName,
            { text: asServerShows(action[1]), action: true }, serverNow());
        }
      }
      return;
    }
    const lines = [];
    for (let line of text.split(/\r\n|\r|\n/)) {
      // The server takes what follows /say ROOM without its leading spaces
      // (and a line that starts with // as one that starts with /).
      line = line.replace(/^ +/, "");
      if (asServerShows(line.startsWith("//") ? line.slice(1) : line)) {
        lines.push(line);
      }
    }
    if (lines.length === 0) {
      return;
    }
    if (current.kind === "room") {
      // Always name the room: the server's current room may be another.
      if (!sendLines(lines.map((line) => `/say ${current.name} ${line}`))) {
        return;
      }
      toEnd(current);
      for (const line of lines) {
        const said = line.startsWith("//") ? line.slice(1) : line;
        show(current, "message own", myName, asServerShows(said), serverNow());
      }
    } else if (current.kind === "person") {
      // Shown once the server says it went through ("sent").
      const unescaped = lines.map((line) =>
        line.startsWith("//") ? line.slice(1) : line);
      if (!sendLines(unescaped.map((line) => `/msg ${current.name} ${line}`))) {
        return;
      }
      toEnd(current);
    } else if (!sendLines(lines)) { // in no room: the server says so
      return;
    }
    message.value = "";
  });

  renameForm.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const wanted = nameBox.value.trim();
    if (wanted && wanted !== myName) {
      renaming = send(`/nick ${wanted}`);
    } else {
      nameBox.value = myName;
    }
  });

  joinForm.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const wanted = roomBox.value.trim();
    if (!wanted) {
      return;
    }
    const view = views.get(roomKey(wanted));
    if (view !== undefined && view.joined) {
      select(view);
      closeMenu();
    } else {
      send(`/join ${wanted}`);
    }
    roomBox.value = "";
  });

  refresh.addEventListener("click", askRooms);

  menu.addEventListener("click", () => {
    if (sidebar.classList.contains("open")) {
      closeMenu();
    } else {
      openMenu();
    }
  });

  jump.addEventListener("click", () => toEnd(current));

  // A log that follows its newest line keeps it in sight when the page
  // changes size (a phone's keyboard, the Rooms panel opening).
  new ResizeObserver(() => {
    if (current.follow && !current.log.hidden) {
      current.log.scrollTop = current.log.scrollHeight;
    }
  }).observe(logs);

  // The list of rooms is asked for again now and then while it is shown
  // to someone there.
  for (const kind of ["keydown", "pointerdown", "pointermove", "wheel"]) {
    document.addEventListener(kind, () => { lastActive = Date.now(); },
      { passive: true });
  }
  setInterval(() => {
    if (directoryWatched()) {
      askRooms();
    }
  }, DIRECTORY_EVERY_MS);

  select(home);
  askSession();
  connect();
})();

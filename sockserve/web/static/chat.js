// sockserve chat page: speaks the sockserve.v2.json subprotocol on /ws of
// its own origin. The page may be in several rooms at once and hold private
// conversations; each has a view of its own, listed in the sidebar with a
// count of the lines not yet seen. Everything other members send is shown
// as text (never as HTML), and the page reconnects, with backoff, when the
// server goes away, taking its chosen name and its rooms again.
"use strict";

(function () {
  const SUBPROTOCOL = "sockserve.v2.json";
  const FIRST_RETRY_MS = 500;
  const LAST_RETRY_MS = 8000;
  const MAX_SHOWN = 2000; // lines kept in each conversation
  const DIRECTORY_EVERY_MS = 30000; // how often a shown room list is asked for
  // ... while the person did something on the page this recently: a page
  // left alone sends nothing, and --idle-timeout still applies to it.
  const ACTIVE_MS = 120000;
  const TITLE = document.title;

  const state = document.getElementById("state");
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
  const title = document.getElementById("title");
  const logs = document.getElementById("logs");
  const sendForm = document.getElementById("send");
  const message = document.getElementById("message");
  const peopleTitle = document.getElementById("people-title");
  const members = document.getElementById("members");
  const peopleNote = document.getElementById("people-note");

  let socket = null;
  let retryMs = FIRST_RETRY_MS;
  let connectedBefore = false; // a welcome is then a reconnection
  let myName = "";
  let chosenName = ""; // a name picked with /nick, taken again on reconnect
  let pendingBanner = null; // the banner, shown once we know where
  // Views by key: "#room" (lower case) for a room, "@name" for a person.
  const views = new Map();
  const rejoining = new Set(); // rooms joined again after a reconnection
  const quietWho = new Map(); // room key: /who answers the page asked for
  let quietRooms = 0; // /rooms answers the page asked for
  let listed = []; // the last /rooms answer: [{name, members}]
  let listedTotal = 0;
  let lastActive = Date.now();

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

  function makeLog(label) {
    const log = document.createElement("ol");
    log.className = "log";
    log.hidden = true;
    log.setAttribute("aria-label", label);
    log.setAttribute("aria-live", "polite");
    logs.append(log);
    return { kind: "none", key: "", name: "", log, unread: 0 };
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
    current.log.hidden = true;
    current = view;
    view.log.hidden = false;
    if (view.item) {
      view.open.setAttribute("aria-current", "true");
      view.item.classList.add("current");
      view.item.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
    setUnread(view, 0);
    showTitle();
    showMembers();
    view.log.scrollTop = view.log.scrollHeight;
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

  // An action (/me waves) is shown as "* name waves", as telnet shows it.
  function show(view, className, sender, text, action = false) {
    const log = view.log;
    const stick = !log.hidden
      && log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    const item = document.createElement("li");
    item.className = action ? `${className} action` : className;
    if (action) {
      item.append("* ");
    }
    if (sender !== null) {
      const who = document.createElement("span");
      who.className = "sender";
      who.textContent = sender;
      item.append(who);
    }
    item.append(document.createTextNode(text));
    log.append(item);
    while (log.childElementCount > MAX_SHOWN) {
      log.firstElementChild.remove();
    }
    if (stick) {
      item.scrollIntoView({ block: "end" });
    }
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

  const handlers = {
    banner(event) { pendingBanner = event.text; },
    welcome(event) {
      myName = event.name;
      nameBox.value = myName;
      // Back after a reconnection: take the rooms the page was in again
      // (the server put it in its default room alone).
      const rooms = [];
      if (connectedBefore) {
        for (const view of views.values()) {
          if (view.kind === "room") {
            rooms.push(view.name);
          }
        }
      }
      const key = roomKey(event.room);
      const stay = rooms.length === 0 || rooms.some((name) => roomKey(name) === key);
      const where = stay ? arrivedIn(event.room) : current;
      if (pendingBanner !== null) {
        show(where, "banner", null, pendingBanner);
        pendingBanner = null;
      }
      show(where, "notice", null,
        `you are ${myName} in #${event.room}; ${othersHere(event.others)}`);
      if (chosenName && chosenName !== myName) {
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
        show(view, "notice", null,
          `you are now in #${event.room}; ${othersHere(event.others)}`);
        askWho(event.room);
      }
      if (!again) {
        select(views.get(key));
        closeMenu();
      }
      showDirectory();
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
      const view = views.get(roomKey(event.room));
      if (view !== undefined) {
        show(view, "message", event.from, event.text, event.action);
        said(view);
      }
    },
    private(event) {
      const view = personView(event.from);
      show(view, "message private", event.from, event.text, event.action);
      said(view);
    },
    sent(event) {
      const known = views.has(personKey(event.to));
      const view = personView(event.to);
      nameView(view, event.to);
      show(view, "message own private", myName, event.text, event.action);
      if (!known) {
        select(view);
      }
    },
    history(event) {
      const view = views.get(roomKey(event.room));
      // The server tells it again to a /join of a room the page is in.
      if (view === undefined || view.historyShown) {
        return;
      }
      view.historyShown = true;
      const omitted = event.omitted
        ? ` (${event.omitted} earlier line(s) too long to show)` : "";
      show(view, "notice", null,
        `the last ${event.lines.length} line(s) said here${omitted}:`);
      for (const line of event.lines) {
        show(view, "message history", line.from, line.text, line.action);
      }
      show(view, "notice", null, "(end of history)");
    },
    joined(event) {
      const view = views.get(roomKey(event.room));
      if (view !== undefined) {
        addMember(view, event.name);
        show(view, "notice", null, `${event.name} joined`);
        membersChanged(view);
      }
    },
    left(event) {
      const view = views.get(roomKey(event.room));
      if (view !== undefined) {
        removeMember(view, event.name);
        show(view, "notice", null, `${event.name} left`);
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
      nameBox.value = myName;
      for (const view of views.values()) {
        if (view.kind === "room") {
          renameMember(view, oldName, myName);
        }
      }
      showMembers();
      show(current, "notice", null, `you are now known as ${myName}`);
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
      const more = event.total > event.names.length
        ? ` and ${event.total - event.names.length} more` : "";
      show(view || current, "notice", null,
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
    error(event) { show(current, "error", null, event.text); },
  };

  // The connection

  function setState(kind, text) {
    state.dataset.state = kind;
    state.textContent = text;
    const open = kind === "connected";
    for (const box of [message, nameBox, roomBox]) {
      box.disabled = !open;
    }
    for (const button of document.querySelectorAll("form button, #refresh")) {
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

  function connect() {
    setState(retryMs === FIRST_RETRY_MS ? "connecting" : "reconnecting",
      retryMs === FIRST_RETRY_MS ? "connecting…" : "reconnecting…");
    socket = new WebSocket(socketAddress(), [SUBPROTOCOL]);
    socket.addEventListener("open", () => {
      retryMs = FIRST_RETRY_MS;
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
      rejoining.clear();
      quietWho.clear();
      quietRooms = 0;
      pendingBanner = null;
      for (const view of views.values()) {
        if (view.kind === "room") {
          view.joined = false;
          view.names = [];
          view.total = 0;
          showRoomState(view);
        }
      }
      showMembers();
      const wait = retryMs;
      retryMs = Math.min(retryMs * 2, LAST_RETRY_MS);
      const why = closed.reason ? ` (${closed.reason})` : "";
      setState("reconnecting",
        `disconnected${why}; reconnecting in ${Math.round(wait / 100) / 10} s…`);
      setTimeout(connect, wait);
    });
  }

  // What the person does

  sendForm.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const text = message.value;
    if (!text || !isOpen()) {
      return;
    }
    if (text.startsWith("/") && !text.startsWith("//")) {
      // A command, as typed; /who and /part alone mean the room in view.
      const bare = text.trim();
      if ((bare === "/who" || bare === "/part") && current.kind === "room") {
        send(`${bare} ${current.name}`);
      } else {
        send(text);
      }
      message.value = "";
      return;
    }
    const lines = [];
    for (let line of text.split(/\r\n|\r|\n/)) {
      line = line.startsWith("//") ? line.slice(1) : line;
      // The server takes what follows /say ROOM without its leading spaces.
      line = line.replace(/^ +/, "");
      if (line) {
        lines.push(line);
      }
    }
    if (lines.length === 0) {
      return;
    }
    message.value = "";
    if (current.kind === "room") {
      // Always name the room: the server's current room may be another.
      send(lines.map((line) => `/say ${current.name} ${line}`).join("\n"));
      for (const line of lines) {
        show(current, "message own", myName, line);
      }
    } else if (current.kind === "person") {
      // Shown once the server says it went through ("sent").
      send(lines.map((line) => `/msg ${current.name} ${line}`).join("\n"));
    } else {
      send(lines.join("\n")); // in no room: the server says so
    }
  });

  renameForm.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const wanted = nameBox.value.trim();
    if (wanted && wanted !== myName) {
      send(`/nick ${wanted}`);
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
  connect();
})();

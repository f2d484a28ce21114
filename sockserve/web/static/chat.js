// sockserve chat page: speaks the sockserve.v1.json subprotocol on /ws of
// its own origin. Everything other members send is shown as text (never as
// HTML), and the page reconnects, with backoff, when the server goes away.
"use strict";

(function () {
  const SUBPROTOCOL = "sockserve.v1.json";
  const FIRST_RETRY_MS = 500;
  const LAST_RETRY_MS = 8000;
  const MAX_SHOWN = 2000; // lines kept in the conversation

  const log = document.getElementById("log");
  const state = document.getElementById("state");
  const members = document.getElementById("members");
  const count = document.getElementById("count");
  const sendForm = document.getElementById("send");
  const message = document.getElementById("message");
  const renameForm = document.getElementById("rename");
  const nameBox = document.getElementById("name");

  let socket = null;
  let retryMs = FIRST_RETRY_MS;
  let myName = "";
  let chosenName = ""; // a name picked with /nick, taken again on reconnect
  let names = [];
  let total = 0;

  function setState(kind, text) {
    state.dataset.state = kind;
    state.textContent = text;
    const open = kind === "connected";
    message.disabled = !open;
    nameBox.disabled = !open;
    for (const button of document.querySelectorAll("form button")) {
      button.disabled = !open;
    }
  }

  function show(className, sender, text) {
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    const item = document.createElement("li");
    item.className = className;
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

  function showMembers() {
    members.replaceChildren();
    for (const name of names) {
      const item = document.createElement("li");
      item.textContent = name;
      if (name === myName) {
        item.className = "me";
      }
      members.append(item);
    }
    if (total > names.length) {
      const more = document.createElement("li");
      more.textContent = `and ${total - names.length} more`;
      members.append(more);
    }
    count.textContent = total ? `(${total})` : "";
  }

  function addMember(name) {
    if (!names.includes(name)) {
      names.push(name);
      names.sort((a, b) => a.localeCompare(b));
    }
    total = Math.max(total + 1, names.length);
    showMembers();
  }

  function removeMember(name) {
    const index = names.indexOf(name);
    if (index >= 0) {
      names.splice(index, 1);
    }
    total = Math.max(total - 1, names.length);
    showMembers();
  }

  function renameMember(oldName, newName) {
    names = names.map((name) => (name === oldName ? newName : name));
    names.sort((a, b) => a.localeCompare(b));
    showMembers();
  }

  const handlers = {
    banner(event) { show("banner", null, event.text); },
    welcome(event) {
      myName = event.name;
      nameBox.value = myName;
      show("notice", null, `you are ${event.name}; ${event.others} other(s) here`);
      if (chosenName && chosenName !== myName) {
        socket.send(`/nick ${chosenName}`);
      }
      socket.send("/who");
    },
    message(event) { show("message", event.from, event.text); },
    history(event) {
      const omitted = event.omitted
        ? ` (${event.omitted} earlier line(s) too long to show)` : "";
      show("notice", null,
        `the last ${event.lines.length} line(s) said here${omitted}:`);
      for (const line of event.lines) {
        show("message history", line.from, line.text);
      }
      show("notice", null, "(end of history)");
    },
    joined(event) {
      addMember(event.name);
      show("notice", null, `${event.name} joined`);
    },
    left(event) {
      removeMember(event.name);
      show("notice", null, `${event.name} left`);
    },
    quietly(event) {
      for (const name of event.joined) {
        addMember(name);
      }
      for (const name of event.left) {
        removeMember(name);
      }
      if (event.joined.length) {
        show("notice", null,
          `${event.joined.length} member(s) joined quietly: ${event.joined.join(", ")}`);
      }
      if (event.left.length) {
        show("notice", null,
          `${event.left.length} member(s) left quietly: ${event.left.join(", ")}`);
      }
    },
    renamed(event) {
      renameMember(event.from, event.to);
      show("notice", null, `${event.from} is now known as ${event.to}`);
    },
    name(event) {
      const oldName = myName;
      myName = event.name;
      chosenName = myName;
      nameBox.value = myName;
      renameMember(oldName, myName);
      show("notice", null, `you are now known as ${myName}`);
    },
    members(event) {
      names = event.names.slice();
      total = event.total;
      showMembers();
    },
    notice(event) { show("notice", null, event.text); },
    error(event) { show("error", null, event.text); },
  };

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
      const handle = handlers[event.type];
      if (handle) {
        handle(event);
      }
    });
    socket.addEventListener("close", (closed) => {
      socket = null;
      names = [];
      total = 0;
      showMembers();
      const wait = retryMs;
      retryMs = Math.min(retryMs * 2, LAST_RETRY_MS);
      const why = closed.reason ? ` (${closed.reason})` : "";
      setState("reconnecting",
        `disconnected${why}; reconnecting in ${Math.round(wait / 100) / 10} s…`);
      setTimeout(connect, wait);
    });
  }

  sendForm.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const text = message.value;
    if (!text || socket === null || socket.readyState !== WebSocket.OPEN) {
      return;
    }
    socket.send(text);
    message.value = "";
    if (text.startsWith("//")) {
      show("message own", myName, text.slice(1));
    } else if (!text.startsWith("/")) {
      show("message own", myName, text);
    }
  });

  renameForm.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const wanted = nameBox.value.trim();
    if (wanted && wanted !== myName && socket !== null
        && socket.readyState === WebSocket.OPEN) {
      socket.send(`/nick ${wanted}`);
    }
  });

  connect();
})();

// salas web client: speaks the JSON protocol at /ws (docs/protocols/web.md).
// Plain JS, no framework, no build step. Everything other people wrote (names,
// messages, topics, reasons) is put on the page with textContent, never as HTML.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const ui = {
    title: $("title"), topic: $("topic"), count: $("count"), status: $("status"),
    menu: $("menu"), drawer: $("drawer"), closeDrawer: $("close-drawer"),
    loginForm: $("login-form"), loginName: $("login-name"), loginPassword: $("login-password"),
    loginGo: $("login-go"), registerGo: $("register-go"), loginError: $("login-error"),
    logs: $("logs"), empty: $("empty"), alert: $("alert"), composer: $("composer"), message: $("message"),
    messageLabel: $("message-label"),
    roomList: $("room-list"), convList: $("conv-list"), convEmpty: $("conv-empty"),
    browse: $("browse"), refresh: $("refresh"), allRooms: $("all-rooms"),
    createForm: $("create-form"), createName: $("create-name"), createLimit: $("create-limit"),
    infoHeading: $("info-h"), topicForm: $("topic-form"), topicInput: $("topic-input"),
    membersHeading: $("members-h"), members: $("members"), leave: $("leave"), pmInfo: $("pm-info"),
    me: $("me"), logout: $("logout"),
    admin: $("admin"), adminOpen: $("admin-open"), adminBack: $("admin-back"), adminRefresh: $("admin-refresh"),
    adminUpdated: $("admin-updated"), adminError: $("admin-error"), adminNote: $("admin-note"),
    adminRooms: $("admin-rooms"), adminUsers: $("admin-users"), adminRoomsH: $("admin-rooms-h"), adminUsersH: $("admin-users-h"),
    broadcastForm: $("broadcast-form"), broadcastText: $("broadcast-text"),
    confirm: $("confirm"), confirmForm: $("confirm-form"), confirmTitle: $("confirm-title"), confirmText: $("confirm-text"),
    confirmReason: $("confirm-reason"), confirmGo: $("confirm-go"), confirmCancel: $("confirm-cancel"),
    pmAudio: $("pm-audio"), pmVideo: $("pm-video"),
    incoming: $("incoming"), incomingTitle: $("incoming-title"), incomingText: $("incoming-text"),
    incomingAccept: $("incoming-accept"), incomingDecline: $("incoming-decline"),
    call: $("call"), callTitle: $("call-title"), callState: $("call-state"), callNote: $("call-note"),
    callAnnounce: $("call-announce"), remoteVideo: $("remote-video"), localVideo: $("local-video"),
    callMute: $("call-mute"), callCamera: $("call-camera"), callHangup: $("call-hangup"), callClose: $("call-close"),
  };
  const PAGE = 50; // messages asked for when scrolling back
  const DELAYS = [500, 1000, 2000, 3000, 5000, 8000, 10000]; // reconnect back-off (ms)
  const STORE_KEY = "salas-session";
  const OVERVIEW_EVERY = 5000; // ms between refreshes while the admin view is open

  const S = {
    ws: null,
    ready: false, // past hello (and login) on the current socket
    everReady: false, // the chat view has been shown since the last sign-in
    mode: "guest", // how to (re)connect: guest, login, register
    name: "", account: null, password: "",
    signedOut: true,
    closing: null, loginFail: "", auto: false, loginName: "", helloLobby: false,
    wantName: null, renick: 0, restore: null,
    retry: 0, timer: 0, nameTries: 0,
    seq: 0, pending: new Map(),
    views: new Map(), active: null,
    wanted: new Map(), // rooms to be in: lower-case name -> {name, key}
    rooms: new Map(), // the last room list: lower-case name -> info
    // Server operator: shown as one (oper), granted on this connection (operLive),
    // how to become one again after a reconnect (operCreds), the admin view open (admin).
    oper: false, operLive: false, operCreds: null, operTimer: 0,
    admin: false, adminTimer: 0, confirm: null,
    // Calls: allowed on this server (direct), the ICE servers it gives, the call in view.
    direct: true, ice: [], call: null,
  };

  // -- small helpers ----------------------------------------------------------------

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  const low = (s) => String(s).toLowerCase();
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  const dayKey = (d) => `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
  function dayLabel(d) {
    const today = new Date();
    if (dayKey(d) === dayKey(today)) return "Today";
    const y = new Date(today); y.setDate(today.getDate() - 1);
    if (dayKey(d) === dayKey(y)) return "Yesterday";
    return d.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long", year: "numeric" });
  }
  const timeText = (d) => d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const nearBottom = (log) => log.scrollHeight - log.scrollTop - log.clientHeight < 40;

  function setStatus(text, bad) {
    ui.status.textContent = text;
    ui.status.classList.toggle("bad", !!bad);
  }
  let alertTimer = 0;
  function showAlert(text) {
    ui.alert.textContent = text;
    clearTimeout(alertTimer);
    alertTimer = setTimeout(() => { ui.alert.textContent = ""; }, 8000);
  }

  // -- the connection -----------------------------------------------------------------

  function send(obj, meta) {
    const ws = S.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return null;
    const id = ++S.seq;
    obj.id = id;
    if (meta) S.pending.set(id, meta);
    ws.send(JSON.stringify(obj));
    return id;
  }

  function connect() {
    clearTimeout(S.timer);
    S.timer = 0;
    S.ready = false;
    S.closing = null;
    S.operLive = false;
    S.pending.clear();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/ws`);
    } catch (err) {
      dropped(null);
      return;
    }
    S.ws = ws;
    setStatus(S.everReady ? "Reconnecting…" : "Connecting…", S.everReady);
    ws.addEventListener("open", () => { if (S.ws === ws) hello(); });
    ws.addEventListener("message", (event) => {
      if (S.ws !== ws || typeof event.data !== "string") return;
      let msg;
      try { msg = JSON.parse(event.data); } catch (err) { return; }
      if (msg && typeof msg === "object") handle(msg);
    });
    ws.addEventListener("close", () => { if (S.ws === ws) dropped(ws); });
  }

  function hello() {
    // The name we want when we are a guest; a login takes the account's name.
    const name = S.mode === "login" ? null : S.name || null;
    // In no room yet: the server puts us in its lobby (making it if need be).
    // A login waits for the account's name, then joins it.
    S.helloLobby = S.wanted.size === 0 && S.mode !== "login";
    send({ type: "hello", name, lobby: S.helloLobby }, { what: "hello" });
  }

  function dropped() {
    S.ws = null;
    endCallHere("the connection to the server was lost");
    S.ready = false;
    for (const v of S.views.values()) if (v.kind === "room") v.joined = false;
    if (S.signedOut) return;
    if (!S.everReady) {
      signOut(S.loginFail || "Could not reach the server. Try again in a moment.");
      return;
    }
    if (S.closing && S.closing.kind === "kill") {
      setStatus(`Disconnected by the server: ${S.closing.reason}. Reload the page to come back.`, true);
      return;
    }
    const delay = DELAYS[Math.min(S.retry, DELAYS.length - 1)] * (0.8 + Math.random() * 0.4);
    S.retry += 1;
    setStatus(`Connection lost. Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s… (what you type is kept)`, true);
    S.timer = setTimeout(connect, delay);
  }

  function ready() {
    S.ready = true;
    S.retry = 0;
    S.nameTries = 0;
    const first = !S.everReady;
    S.everReady = true;
    if (S.mode === "register") S.mode = "login";
    if (S.mode === "login" && !S.account) S.mode = "guest";
    body.classList.remove("signed-out");
    setStatus(`Connected as ${S.name}${S.account ? "" : " (guest)"}`);
    renderMe();
    if (S.wantName && low(S.wantName) !== low(S.name)) reclaimName();
    if (S.wanted.size === 0 && !S.helloLobby) {
      const lobby = S.lobby || "lobby";
      S.wanted.set(low(lobby), { name: lobby, key: null });
    }
    for (const room of S.wanted.values()) {
      const v = S.views.get(`#${low(room.name)}`);
      if (v && v.joined) continue; // joined already, by hello
      const req = { type: "join", room: room.name };
      if (room.key) req.key = room.key;
      send(req, { what: "join", room: room.name, key: room.key, rejoin: true });
    }
    for (const v of S.views.values()) if (v.kind === "pm") fetchLatest(v);
    send({ type: "list" }, { what: "list" });
    if (S.oper) {
      // Operator again on the new connection: by the remembered /oper, or by the account's flag.
      if (S.operCreds) send({ type: "oper", ...S.operCreds }, { what: "reoper" });
      clearTimeout(S.operTimer);
      S.operTimer = setTimeout(() => { if (!S.operLive) setOper(false); }, 10000);
    }
    saveSession();
    if (first) ui.message.focus();
  }

  // Every 5 seconds for 2 minutes, ask for the name the dropped connection held.
  function reclaimName() {
    clearInterval(S.renick);
    showAlert(`Your name ${S.wantName} is still held by the dropped connection: you are ${S.name} until it is free.`);
    let tries = 0;
    S.renick = setInterval(() => {
      tries += 1;
      if (!S.wantName || tries > 24) { clearInterval(S.renick); S.wantName = null; return; }
      if (S.ready) send({ type: "nick", name: S.wantName }, { what: "renick" });
    }, 5000);
  }

  function signOut(error) {
    endCallHere("you logged out");
    clearInterval(S.renick);
    S.wantName = null;
    S.signedOut = true;
    S.everReady = false;
    S.ready = false;
    clearTimeout(S.timer);
    const ws = S.ws;
    S.ws = null;
    if (ws) {
      try {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "quit", reason: "Logged out" }));
        ws.close(1000);
      } catch (err) { /* closed already */ }
    }
    setOper(false);
    for (const v of [...S.views.values()]) removeView(v);
    S.wanted.clear();
    S.password = "";
    S.account = null;
    try { sessionStorage.removeItem(STORE_KEY); } catch (err) { /* storage off */ }
    closeDrawer(false);
    body.classList.add("signed-out");
    ui.title.textContent = "salas";
    document.title = "salas";
    setStatus("");
    ui.loginGo.disabled = ui.registerGo.disabled = false;
    ui.loginError.textContent = error || "";
    ui.loginPassword.value = "";
    ui.loginName.focus();
  }

  function saveSession() {
    if (S.signedOut) return;
    const data = {
      name: S.wantName || S.name,
      account: !!S.account,
      rooms: [...S.wanted.values()],
      convs: [...S.views.values()].filter((v) => v.kind === "pm").map((v) => v.name),
      active: S.active,
    };
    try {
      sessionStorage.setItem(STORE_KEY, JSON.stringify(data));
      localStorage.setItem("salas-name", S.name);
    } catch (err) { /* storage off: nothing to keep */ }
  }

  // -- what the server says -------------------------------------------------------------

  function handle(m) {
    const meta = m.re !== undefined ? S.pending.get(m.re) : undefined;
    if (meta && meta.done && m.type !== "error") { S.pending.delete(m.re); doneNote(meta.done); }
    switch (m.type) {
      case "welcome": onWelcome(m); break;
      case "logged_in": onLoggedIn(m); break;
      case "account_registered": onRegistered(m); break;
      case "joined": onJoined(m, meta); break;
      case "left": onLeft(m); break;
      case "members": onMembers(m); break;
      case "history": onHistory(m, meta); break;
      case "message": onMessage(m); break;
      case "private": onPrivate(m); break;
      case "topic": onTopic(m); break;
      case "rooms": onRooms(m); break;
      case "renamed": onRenamed(m); break;
      case "away": onAway(m); break;
      case "notice": addEvent(activeView(), `Notice${m.by ? ` from ${m.by}` : ""}: ${m.text}`, "notice"); break;
      case "invited":
        if (low(m.to) === low(S.name)) addEvent(activeView(), `${m.by} invited you to ${m.room}`, "notice");
        break;
      case "password_changed": showAlert("Your password was changed."); break;
      case "oper": onOper(meta); break;
      case "deoper":
        setOper(false);
        addEvent(activeView(), "You are no longer a server operator.", "notice");
        break;
      case "overview": if (S.oper) renderAdmin(m); break;
      case "call": onCall(m); break;
      case "call_signal": onSignal(m); break;
      case "error": onError(m, meta); break;
      case "closing": S.closing = m; break;
      case "ok": if (m.re !== undefined) S.pending.delete(m.re); break;
      default: break;
    }
  }

  function onWelcome(m) {
    S.name = m.name;
    S.account = m.account;
    if (typeof m.lobby === "string" && m.lobby) S.lobby = m.lobby;
    S.direct = m.direct !== false;
    S.ice = Array.isArray(m.ice_servers) ? m.ice_servers.filter((x) => x && typeof x === "object") : [];
    body.classList.toggle("no-direct", !S.direct);
    if (S.mode === "login") {
      send({ type: "login", name: S.loginName, password: S.password }, { what: "login" });
    } else if (S.mode === "register") {
      send({ type: "register", password: S.password }, { what: "register" });
    } else {
      ready();
    }
  }

  function onLoggedIn(m) {
    S.name = m.name;
    S.account = m.account;
    if (!S.ready) ready();
    else renderMe();
  }

  function onRegistered(m) {
    S.account = m.account;
    if (!S.ready) ready();
    else { renderMe(); showAlert(`${m.account} is now your account.`); }
  }

  function onError(m, meta) {
    if (m.re !== undefined) S.pending.delete(m.re);
    const what = meta ? meta.what : "";
    if (!S.ready && (what === "hello" || what === "login" || what === "register")) {
      if (!S.everReady) {
        // Signing in: say why on the sign-in form.
        if (what === "hello" && m.code === "name_taken" && S.nameTries < 3 && S.auto) {
          S.nameTries += 1; // our own previous page may still hold the name for a moment
          setTimeout(() => { if (S.ws && !S.ready) hello(); }, 700);
          return;
        }
        S.loginFail = m.text;
        if (S.ws) S.ws.close();
        return;
      }
      // Reconnecting: the dropped connection may hold our name until the server
      // notices it is gone. Come back as a guest and take the name back once it is free.
      if (what === "hello" && (m.code === "name_taken" || m.code === "name_reserved")) {
        if (m.code === "name_taken") S.wantName = S.name;
        S.name = "";
        hello();
        return;
      }
      if (what === "login" || what === "register") {
        showAlert(`Could not log in again (${m.text}); you are a guest for now.`);
        S.mode = "guest";
        ready();
        return;
      }
    }
    if (what === "renick") return; // still taken: the next try may do
    if (what === "overview" || what === "reoper") {
      if (m.code === "not_server_operator" || what === "reoper") {
        setOper(false);
        showAlert(`You are no longer a server operator: ${m.text}`);
      }
      return;
    }
    if (what === "oper") { showAlert(`Could not become a server operator: ${m.text}`); return; }
    if (what === "call" || what === "call_answer") { callRefused(meta, m.text); return; }
    if (what === "call_signal" || what === "call_end") return; // a call that has ended already
    if (what === "admin" && S.admin) { ui.adminError.textContent = m.text; return; }
    if ((what === "say" || what === "msg") && meta.text && !ui.message.value) {
      ui.message.value = meta.text; // not sent: give the text back
    }
    if (what === "join" && meta.rejoin) {
      const v = S.views.get(`#${low(meta.room)}`);
      S.wanted.delete(low(meta.room));
      if (v) { v.joined = false; markGone(v); addEvent(v, `Could not rejoin ${meta.room}: ${m.text}`, "notice"); }
      saveSession();
      return;
    }
    if (what === "history") {
      const v = S.views.get(meta.key);
      if (v) { v.loading = false; v.more = false; setLoading(v, false); }
      return; // an empty past is no news
    }
    showAlert(m.text);
  }

  function onJoined(m, meta) {
    const v = roomView(m.room);
    v.count = m.count;
    if (m.own) {
      const key = meta && meta.key ? meta.key : (S.wanted.get(low(m.room)) || {}).key || null;
      S.wanted.set(low(m.room), { name: m.room, key });
      v.joined = true;
      markGone(v);
      if (meta && meta.limit) v.limit = meta.limit;
      const here = plural(m.count, "person", "people");
      // The history that comes with the join goes above this line.
      v.joinPrevDay = v.lastDay;
      const mark = addEvent(v, meta && meta.rejoin && v.ids.size ? `Back in ${m.room} (${here} here)` : `You joined ${m.room} (${here} here)`);
      v.joinMark = mark.li;
      v.joinSep = mark.sep;
      if (meta && meta.show) show(v.key);
      else if (!S.active || v.key === S.restore) {
        // Someone already in the admin view stays there; the room waits behind it.
        if (S.admin) S.active = v.key;
        else show(v.key);
      }
      if (v.key === S.restore) S.restore = null;
      saveSession();
      send({ type: "list" }, { what: "list" });
    } else {
      v.members.set(low(m.who), { name: m.who, account: m.account, op: false, voice: false, away: false });
      addEvent(v, `${m.who} joined (${plural(m.count, "person", "people")} here)`);
    }
    roomChanged(v);
  }

  function onLeft(m) {
    const v = S.views.get(`#${low(m.room)}`);
    if (!v) return;
    v.count = m.count;
    const why = m.reason ? `: ${m.reason}` : "";
    if (m.own) {
      S.wanted.delete(low(m.room));
      saveSession();
      send({ type: "list" }, { what: "list" });
      if (m.kind === "leave") { removeView(v); return; }
      v.joined = false;
      markGone(v);
      v.members.clear();
      addEvent(v, m.kind === "kick" ? `You were removed from ${m.room} by ${m.by}${why}` : `${m.room} was closed${m.by ? ` by ${m.by}` : ""}${why}`, "notice");
    } else {
      v.members.delete(low(m.who));
      const here = `(${plural(m.count, "person", "people")} here)`;
      if (m.kind === "kick") addEvent(v, `${m.who} was removed by ${m.by}${why} ${here}`);
      else if (m.kind === "quit") addEvent(v, `${m.who} quit${why} ${here}`);
      else addEvent(v, `${m.who} left${why} ${here}`);
    }
    roomChanged(v);
  }

  function onMembers(m) {
    if (!m.room) return;
    const v = S.views.get(`#${low(m.room)}`);
    if (!v) return;
    v.members.clear();
    for (const p of m.members) v.members.set(low(p.name), { name: p.name, account: p.account, op: !!p.op, voice: !!p.voice, away: !!p.away });
    v.count = m.members.length;
    roomChanged(v);
  }

  function isOwn(m) {
    return !!m.own || (S.account && m.account === S.account) || low(m.from) === low(S.name);
  }

  function onHistory(m, meta) {
    let v;
    if (meta && meta.key) v = S.views.get(meta.key);
    else v = S.views.get(`${m.room ? "#" : "@"}${low(m.target)}`);
    if (!v) return;
    if (meta) S.pending.delete(m.re);
    const older = !!(meta && meta.before);
    if (older) {
      v.loading = false;
      setLoading(v, false);
      if (m.messages.length < meta.limit) v.more = false;
    } else if (v.oldest === null) {
      v.more = m.messages.length > 0;
    }
    addMessages(v, m.messages, m.reason === "join");
    if (m.reason === "join") v.joinMark = v.joinSep = null;
    if (v.more && v.key === S.active) fillUp(v);
  }

  function onMessage(m) {
    const v = S.views.get(`#${low(m.room)}`);
    if (!v) return;
    addMessages(v, [m]);
    if (v.key !== S.active && !isOwn(m)) bumpUnread(v);
  }

  function onPrivate(m) {
    const own = isOwn(m);
    const other = own ? m.to : m.from;
    const v = convView(other);
    addMessages(v, [m]);
    if (v.key !== S.active && !own) bumpUnread(v);
    saveSession();
  }

  function onTopic(m) {
    const v = S.views.get(`#${low(m.room)}`);
    if (!v) return;
    v.topic = m.text || "";
    if (m.changed) {
      addEvent(v, m.text ? `${m.by} set the topic: ${m.text}` : `${m.by} cleared the topic`);
    }
    roomChanged(v);
  }

  function onRooms(m) {
    S.rooms.clear();
    for (const r of m.rooms) {
      S.rooms.set(low(r.name), r);
      const v = S.views.get(`#${low(r.name)}`);
      if (v) { v.limit = r.limit; if (v.joined) v.count = r.count; }
    }
    renderAllRooms();
    const v = activeView();
    if (v) renderHeader();
  }

  function onRenamed(m) {
    if (m.own) {
      S.name = m.new;
      if (S.wantName && low(S.wantName) === low(m.new)) { clearInterval(S.renick); S.wantName = null; }
      renderMe();
      setStatus(`Connected as ${S.name}${S.account ? "" : " (guest)"}`);
      saveSession();
    }
    for (const v of S.views.values()) {
      if (v.kind === "room" && v.members.has(low(m.old))) {
        const p = v.members.get(low(m.old));
        v.members.delete(low(m.old));
        p.name = m.new;
        v.members.set(low(m.new), p);
        addEvent(v, m.own ? `You are now known as ${m.new}` : `${m.old} is now known as ${m.new}`);
        roomChanged(v);
      }
    }
    if (S.call && low(S.call.peer) === low(m.old)) { S.call.peer = m.new; renderCall(); }
    const conv = S.views.get(`@${low(m.old)}`);
    if (conv && !S.views.has(`@${low(m.new)}`)) {
      S.views.delete(conv.key);
      conv.key = `@${low(m.new)}`;
      conv.name = m.new;
      conv.nameEl.textContent = m.new;
      conv.log.setAttribute("aria-label", `Conversation with ${m.new}`);
      S.views.set(conv.key, conv);
      if (S.active === `@${low(m.old)}`) { S.active = conv.key; renderHeader(); }
      addEvent(conv, `${m.old} is now known as ${m.new}`);
    }
  }

  function onAway(m) {
    if (m.own) {
      setStatus(m.text ? `You are away: ${m.text}` : `Connected as ${S.name}`);
      return;
    }
    for (const v of S.views.values()) {
      const p = v.kind === "room" && v.members.get(low(m.who));
      if (p) { p.away = !!m.text; roomChanged(v); }
    }
    const conv = S.views.get(`@${low(m.who)}`);
    if (conv && m.text) addEvent(conv, `${m.who} is away: ${m.text}`, "notice");
  }

  // -- views: one per room and per private conversation ---------------------------------------

  function makeView(kind, name) {
    const key = `${kind === "room" ? "#" : "@"}${low(name)}`;
    const log = el("div", "log");
    const list = el("ol");
    log.append(list);
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    log.setAttribute("aria-label", kind === "room" ? `Messages in ${name}` : `Conversation with ${name}`);
    log.tabIndex = 0;
    log.hidden = true;
    ui.logs.append(log);
    const li = el("li");
    const button = el("button");
    button.type = "button";
    const sigil = el("span", "sigil", kind === "room" ? "#" : "@");
    sigil.setAttribute("aria-hidden", "true");
    const nameEl = el("span", "name", name);
    const badge = el("span", "unread");
    button.append(sigil, nameEl, badge);
    li.append(button);
    (kind === "room" ? ui.roomList : ui.convList).append(li);
    ui.convEmpty.hidden = ui.convList.children.length > 0;
    const v = {
      key, kind, name, log, list, li, button, nameEl, badge,
      ids: new Set(), oldest: null, newest: null, lastDay: null,
      more: false, loading: false, unread: 0, atBottom: true, scroll: 0,
      joined: kind === "pm", members: new Map(), count: 0, limit: null, topic: "",
      joinMark: null, joinSep: null, joinPrevDay: null,
    };
    button.addEventListener("click", () => { show(v.key); closeDrawer(false); ui.message.focus(); });
    log.addEventListener("scroll", () => { if (log.scrollTop < 120) loadOlder(v); });
    S.views.set(key, v);
    return v;
  }

  function roomView(name) {
    return S.views.get(`#${low(name)}`) || makeView("room", name);
  }

  function convView(name) {
    let v = S.views.get(`@${low(name)}`);
    if (!v) { v = makeView("pm", name); if (S.ready) fetchLatest(v); }
    return v;
  }

  function removeView(v) {
    v.log.remove();
    v.li.remove();
    S.views.delete(v.key);
    ui.convEmpty.hidden = ui.convList.children.length > 0;
    if (S.active === v.key) {
      S.active = null;
      const next = S.views.values().next().value;
      if (next) show(next.key);
      else renderHeader();
    }
    updateTitle();
  }

  const activeView = () => (S.active ? S.views.get(S.active) : undefined);

  function markGone(v) {
    v.li.classList.toggle("gone", v.kind === "room" && !v.joined);
  }

  function show(key) {
    const v = S.views.get(key);
    if (!v) return;
    if (S.admin) leaveAdmin();
    const prev = activeView();
    if (prev && prev !== v) {
      prev.atBottom = nearBottom(prev.log);
      prev.scroll = prev.log.scrollTop;
      prev.log.hidden = true;
      prev.button.removeAttribute("aria-current");
    }
    S.active = key;
    v.log.hidden = false;
    v.button.setAttribute("aria-current", "page");
    if (v.atBottom) v.log.scrollTop = v.log.scrollHeight;
    else v.log.scrollTop = v.scroll;
    v.unread = 0;
    renderBadge(v);
    renderHeader();
    saveSession();
    if (v.more) fillUp(v);
  }

  function bumpUnread(v) {
    v.unread += 1;
    renderBadge(v);
  }

  function renderBadge(v) {
    v.badge.textContent = "";
    if (v.unread > 0) {
      v.badge.append(String(v.unread), el("span", "vh", " unread"));
    }
    updateTitle();
  }

  function updateTitle() {
    let total = 0;
    for (const v of S.views.values()) total += v.unread;
    const v = activeView();
    let where = v ? `${v.kind === "room" ? "#" : ""}${v.name} · salas` : "salas";
    if (S.admin) where = "Server admin · salas";
    document.title = total ? `(${total}) ${where}` : where;
  }

  function roomChanged(v) {
    if (v.key === S.active) renderHeader();
  }

  function sizeText(count, limit) {
    return limit ? `${count}/${limit}` : String(count);
  }

  function renderHeader() {
    const v = activeView();
    if (S.admin) {
      ui.title.textContent = "Server admin";
      ui.topic.textContent = "Rooms and people on this server";
      ui.count.textContent = "";
      body.classList.remove("in-pm");
      renderInfo(null);
      updateTitle();
      return;
    }
    if (!v) {
      ui.title.textContent = "salas";
      ui.topic.textContent = "";
      ui.count.textContent = "";
      ui.messageLabel.textContent = "Message (join a room first)";
      body.classList.remove("in-pm");
      body.classList.add("no-view");
      ui.empty.hidden = false;
      renderInfo(null);
      updateTitle();
      return;
    }
    ui.title.textContent = "";
    if (v.kind === "room") {
      const sigil = el("span", "sigil", "#");
      sigil.setAttribute("aria-hidden", "true");
      ui.title.append(sigil, v.name);
      ui.topic.textContent = v.topic;
      ui.count.textContent = v.joined ? `${sizeText(v.count, v.limit)} ${v.count === 1 && !v.limit ? "member" : "members"}` : "not joined";
      ui.messageLabel.textContent = `Message to ${v.name}`;
    } else {
      ui.title.textContent = v.name;
      ui.pmAudio.setAttribute("aria-label", `Audio call with ${v.name}`);
      ui.pmVideo.setAttribute("aria-label", `Video call with ${v.name}`);
      ui.topic.textContent = "Private conversation";
      ui.count.textContent = "";
      ui.messageLabel.textContent = `Message to ${v.name}`;
    }
    body.classList.toggle("in-pm", v.kind === "pm");
    body.classList.remove("no-view");
    ui.empty.hidden = true;
    renderInfo(v);
    updateTitle();
  }

  function renderInfo(v) {
    ui.members.textContent = "";
    if (!v) { ui.infoHeading.textContent = "About this room"; return; }
    if (v.kind === "pm") {
      ui.infoHeading.textContent = "About this conversation";
      ui.pmInfo.textContent = `Only you and ${v.name} see these messages.`;
      return;
    }
    ui.infoHeading.textContent = `About ${v.name}`;
    if (document.activeElement !== ui.topicInput) ui.topicInput.value = v.topic;
    ui.membersHeading.textContent = `Members (${sizeText(v.members.size, v.limit)})`;
    const people = [...v.members.values()].sort((a, b) => (b.op - a.op) || low(a.name).localeCompare(low(b.name)));
    for (const p of people) {
      const li = el("li");
      const tags = [];
      if (p.op) tags.push("operator");
      if (p.away) tags.push("away");
      if (low(p.name) === low(S.name)) {
        li.append(el("span", "you", `${p.name} (you)`));
      } else {
        const b = el("button", null, p.name);
        b.type = "button";
        b.setAttribute("aria-label", `${p.name}: write privately`);
        b.addEventListener("click", () => openConversation(p.name));
        li.append(b, callButton(p.name, "audio"), callButton(p.name, "video"));
      }
      if (tags.length) li.append(el("span", "tag", `(${tags.join(", ")})`));
      ui.members.append(li);
    }
  }

  function renderMe() {
    ui.me.textContent = S.account ? `${S.name}, logged in as ${S.account}` : `${S.name} (guest)`;
  }

  function renderAllRooms() {
    ui.allRooms.textContent = "";
    const rooms = [...S.rooms.values()].sort((a, b) => low(a.name).localeCompare(low(b.name)));
    for (const r of rooms) {
      const li = el("li");
      const b = el("button", null, r.name);
      b.type = "button";
      const joined = S.views.get(`#${low(r.name)}`);
      b.setAttribute("aria-label", `${r.name}: ${joined && joined.joined ? "go to" : "join"}, ${r.limit ? `${r.count} of ${r.limit} places taken` : plural(r.count, "person", "people")}${r.private ? ", private" : ""}${r.keyed ? ", needs a key" : ""}`);
      if (r.topic) b.title = r.topic;
      b.addEventListener("click", () => joinRoom(r.name, null));
      const size = el("span", "size", sizeText(r.count, r.limit));
      size.setAttribute("aria-hidden", "true");
      li.append(b, size);
      ui.allRooms.append(li);
    }
    if (!rooms.length) ui.allRooms.append(el("li", "hint", "No rooms yet."));
  }

  // -- the message list -----------------------------------------------------------------

  function dayItem(d) {
    const li = el("li", "day", dayLabel(d));
    li.dataset.day = dayKey(d);
    return li;
  }

  function messageItem(m) {
    const li = el("li", "msg");
    if (isOwn(m)) li.classList.add("own");
    if (m.kind === "action" || m.kind === "notice") li.classList.add(m.kind);
    li.dataset.id = String(m.id);
    const d = new Date(m.time);
    const t = el("time", null, timeText(d));
    t.dateTime = m.time;
    t.title = d.toLocaleString();
    const content = el("div", "content");
    const from = el("span", "from", m.kind === "action" ? `* ${m.from}` : m.from);
    const text = el("span", "text", m.text);
    content.append(from, " ", text);
    li.append(t, " ", content);
    return li;
  }

  // Puts messages in the view, oldest first, each once: newer ones at the end,
  // older ones (scrolled back) at the top, keeping what is in sight in place.
  function addMessages(v, list, atJoin) {
    const newer = [];
    const older = [];
    for (const m of list) {
      if (typeof m.id !== "number" || v.ids.has(m.id)) continue;
      if (v.newest === null || m.id > v.newest) newer.push(m);
      else if (m.id < v.oldest) older.push(m);
      else continue;
      v.ids.add(m.id);
    }
    older.sort((a, b) => a.id - b.id);
    newer.sort((a, b) => a.id - b.id);
    if (older.length) prepend(v, older);
    const stick = v.log.hidden ? v.atBottom : nearBottom(v.log);
    if (atJoin && v.joinMark && v.joinMark.parentNode === v.list) {
      // Above the "You joined" line (and its day heading, which may then go).
      const mark = v.joinSep || v.joinMark;
      let day = v.joinPrevDay;
      for (const m of newer) {
        const d = new Date(m.time);
        if (dayKey(d) !== day) { day = dayKey(d); v.list.insertBefore(dayItem(d), mark); }
        v.list.insertBefore(messageItem(m), mark);
        if (v.oldest === null) v.oldest = m.id;
        v.newest = m.id;
      }
      if (v.joinSep && v.joinSep.dataset.day === day) v.joinSep.remove();
    } else {
      for (const m of newer) {
        const d = new Date(m.time);
        if (dayKey(d) !== v.lastDay) { v.list.append(dayItem(d)); v.lastDay = dayKey(d); }
        v.list.append(messageItem(m));
        if (v.oldest === null) v.oldest = m.id;
        v.newest = m.id;
      }
    }
    if (newer.length && stick) {
      if (v.log.hidden) v.atBottom = true;
      else v.log.scrollTop = v.log.scrollHeight;
    }
  }

  function prepend(v, older) {
    const log = v.log;
    const fromBottom = log.scrollHeight - log.scrollTop;
    const frag = document.createDocumentFragment();
    let day = null;
    for (const m of older) {
      const d = new Date(m.time);
      if (dayKey(d) !== day) { day = dayKey(d); frag.append(dayItem(d)); }
      frag.append(messageItem(m));
    }
    const first = v.list.firstElementChild;
    if (first && first.classList.contains("day") && first.dataset.day === day) first.remove();
    v.list.prepend(frag);
    v.oldest = older[0].id;
    if (v.newest === null) v.newest = older[older.length - 1].id;
    if (v.lastDay === null) v.lastDay = day;
    if (!log.hidden) log.scrollTop = log.scrollHeight - fromBottom;
  }

  function addEvent(v, text, cls) {
    if (!v) { showAlert(text); return { li: null, sep: null }; }
    const d = new Date();
    const stick = v.log.hidden ? v.atBottom : nearBottom(v.log);
    let sep = null;
    if (dayKey(d) !== v.lastDay) { sep = dayItem(d); v.list.append(sep); v.lastDay = dayKey(d); }
    const li = el("li", `event${cls ? ` ${cls}` : ""}`);
    const t = el("time", "vh", timeText(d));
    t.dateTime = d.toISOString();
    li.append(t, ` ${text}`);
    v.list.append(li);
    if (stick && !v.log.hidden) v.log.scrollTop = v.log.scrollHeight;
    return { li, sep };
  }

  function setLoading(v, on) {
    const first = v.list.firstElementChild;
    const has = first && first.classList.contains("more");
    if (on && !has) v.list.prepend(el("li", "more", "Loading older messages…"));
    if (!on && has) first.remove();
  }

  function historyRequest(v) {
    return v.kind === "room" ? { type: "history", room: v.name } : { type: "history", with: v.name };
  }

  function loadOlder(v) {
    if (!v.more || v.loading || v.oldest === null || !S.ready) return;
    const req = historyRequest(v);
    req.before = v.oldest;
    req.limit = PAGE;
    if (send(req, { what: "history", key: v.key, before: v.oldest, limit: PAGE }) === null) return;
    v.loading = true;
    setLoading(v, true);
  }

  // When the list does not fill its box there is nothing to scroll: fetch more at once.
  function fillUp(v) {
    requestAnimationFrame(() => {
      if (v.key === S.active && v.more && v.log.scrollHeight <= v.log.clientHeight + 20) loadOlder(v);
    });
  }

  function fetchLatest(v) {
    const req = historyRequest(v);
    req.limit = PAGE;
    send(req, { what: "history", key: v.key });
  }

  // -- doing things -----------------------------------------------------------------------

  function joinRoom(name, key) {
    const v = S.views.get(`#${low(name)}`);
    if (v && v.joined) { show(v.key); closeDrawer(false); ui.message.focus(); return; }
    const req = { type: "join", room: name };
    if (key) req.key = key;
    if (send(req, { what: "join", room: name, key, show: true }) === null) showAlert("Not connected yet.");
    closeDrawer(false);
    ui.message.focus();
  }

  function openConversation(name) {
    const v = convView(name);
    show(v.key);
    closeDrawer(false);
    ui.message.focus();
  }

  function say(text, kind) {
    const v = activeView();
    if (!v) { showAlert("Join a room first: see All rooms."); return false; }
    if (!S.ready) { showAlert("Not connected: your message is kept here until the connection is back."); return false; }
    if (v.kind === "room" && !v.joined) { showAlert(`You are not in ${v.name}. Join it again from All rooms.`); return false; }
    const req = v.kind === "room" ? { type: "say", room: v.name, text } : { type: "msg", to: v.name, text };
    if (kind !== "say") req.kind = kind;
    return send(req, { what: v.kind === "room" ? "say" : "msg", text }) !== null;
  }

  const HELP = "Commands: /me ACTION, /join ROOM [KEY], /create ROOM [LIMIT], /leave [REASON], /msg NAME TEXT, /topic [TEXT], /nick NAME, /away [TEXT], /list, /help. Start with // to say a line that begins with /. Server operators: /oper NAME PASSWORD, /close ROOM [REASON], /kill NAME [REASON], /broadcast TEXT, /shutdown [REASON].";

  function command(line) {
    const space = line.indexOf(" ");
    const cmd = low(space < 0 ? line.slice(1) : line.slice(1, space));
    const arg = space < 0 ? "" : line.slice(space + 1).trim();
    const words = arg ? arg.split(/\s+/) : [];
    const needConn = () => { if (!S.ready) { showAlert("Not connected yet."); return false; } return true; };
    switch (cmd) {
      case "me":
        return arg ? say(arg, "action") : (showAlert("/me needs some text"), false);
      case "join":
        if (!words[0]) { showAlert("/join needs a room name"); return false; }
        if (!needConn()) return false;
        joinRoom(words[0].replace(/^#/, ""), words[1] || null);
        return true;
      case "create": {
        if (!words[0]) { showAlert("/create needs a room name"); return false; }
        if (!needConn()) return false;
        const limit = words[1] ? Number(words[1]) : null;
        if (words[1] && !(Number.isInteger(limit) && limit > 0)) { showAlert("The limit must be a whole number"); return false; }
        createRoom(words[0].replace(/^#/, ""), limit);
        return true;
      }
      case "leave": case "part": {
        const v = activeView();
        if (!v || v.kind !== "room") { showAlert("This is not a room"); return false; }
        if (!needConn()) return false;
        leaveRoom(v, arg);
        return true;
      }
      case "msg": case "query": {
        if (!words[0]) { showAlert("/msg needs a name"); return false; }
        if (!needConn()) return false;
        const text = arg.slice(words[0].length).trim();
        const v = convView(words[0]);
        show(v.key);
        if (text) send({ type: "msg", to: words[0], text }, { what: "msg", text: "" });
        return true;
      }
      case "topic": {
        const v = activeView();
        if (!v || v.kind !== "room") { showAlert("This is not a room"); return false; }
        if (!needConn()) return false;
        if (!arg) { addEvent(v, v.topic ? `Topic: ${v.topic}` : "No topic is set", "notice"); return true; }
        send({ type: "topic", room: v.name, text: arg }, { what: "topic" });
        return true;
      }
      case "nick":
        if (!words[0]) { showAlert("/nick needs a name"); return false; }
        if (!needConn()) return false;
        send({ type: "nick", name: words[0] }, { what: "nick" });
        return true;
      case "away":
        if (!needConn()) return false;
        send(arg ? { type: "away", text: arg } : { type: "away" }, { what: "away" });
        return true;
      case "list":
        ui.browse.open = true;
        send({ type: "list" }, { what: "list" });
        return true;
      case "help":
        addEvent(activeView(), HELP, "notice");
        return true;
      case "oper": {
        const password = arg.slice((words[0] || "").length).trim();
        if (!password) { showAlert("/oper needs a name and a password"); return false; }
        if (!needConn()) return false;
        const creds = { name: words[0], password };
        send({ type: "oper", ...creds }, { what: "oper", creds });
        return true;
      }
      case "close": {
        if (!words[0]) { showAlert("/close needs a room name"); return false; }
        if (!needConn()) return false;
        const room = words[0].replace(/^#/, "");
        adminAct({ type: "close", room, reason: arg.slice(words[0].length).trim() }, `Room ${room} was closed.`);
        return true;
      }
      case "kill": {
        if (!words[0]) { showAlert("/kill needs a name"); return false; }
        if (!needConn()) return false;
        adminAct({ type: "kill", name: words[0], reason: arg.slice(words[0].length).trim() }, `${words[0]} was removed from the server.`);
        return true;
      }
      case "broadcast":
        if (!arg) { showAlert("/broadcast needs some text"); return false; }
        if (!needConn()) return false;
        adminAct({ type: "broadcast", text: arg }, "");
        return true;
      case "shutdown":
        if (!needConn()) return false;
        adminAct({ type: "shutdown", reason: arg }, "The server is shutting down.");
        return true;
      default:
        showAlert(`/${cmd} is not a command here. /help lists them; start with // to say it.`);
        return false;
    }
  }

  function createRoom(name, limit) {
    const req = { type: "create", room: name };
    if (limit) req.limit = limit;
    send(req, { what: "create", room: name, limit, show: true });
  }

  function leaveRoom(v, reason) {
    if (!v.joined) { removeView(v); return; }
    const req = { type: "leave", room: v.name };
    if (reason) req.reason = reason;
    send(req, { what: "leave" });
  }

  // -- server operators: the admin view ----------------------------------------------------------

  function setOper(on) {
    S.oper = on;
    clearTimeout(S.operTimer);
    body.classList.toggle("oper", on);
    if (!on) {
      S.operLive = false;
      S.operCreds = null;
      if (S.admin) closeAdmin(false);
    }
  }

  function onOper(meta) {
    const was = S.oper;
    S.operLive = true;
    if (meta && meta.creds) S.operCreds = meta.creds;
    setOper(true);
    if (!was) addEvent(activeView(), "You are a server operator: Server admin (in the room list) shows every room and everyone online.", "notice");
  }

  function doneNote(text) {
    if (S.admin) ui.adminNote.textContent = text;
    else addEvent(activeView(), text, "notice");
  }

  // An operator's request; its answer is shown (and the overview refreshed while open).
  function adminAct(req, done) {
    if (req.reason === "") delete req.reason;
    ui.adminError.textContent = "";
    ui.adminNote.textContent = "";
    if (send(req, { what: "admin", done }) === null) { showAlert("Not connected yet."); return; }
    if (S.admin) pollOverview();
  }

  function pollOverview() {
    if (S.admin && S.ready && S.operLive) send({ type: "overview" }, { what: "overview" });
  }

  function openAdmin() {
    if (!S.oper) return;
    const v = activeView();
    if (v && !S.admin) {
      v.atBottom = nearBottom(v.log);
      v.scroll = v.log.scrollTop;
      v.log.hidden = true;
      v.button.removeAttribute("aria-current");
    }
    S.admin = true;
    body.classList.add("in-admin");
    ui.admin.hidden = false;
    ui.adminOpen.setAttribute("aria-current", "page");
    renderHeader();
    closeDrawer(false);
    clearInterval(S.adminTimer);
    S.adminTimer = setInterval(pollOverview, OVERVIEW_EVERY);
    pollOverview();
    ui.admin.focus();
  }

  function leaveAdmin() {
    S.admin = false;
    clearInterval(S.adminTimer);
    body.classList.remove("in-admin");
    ui.admin.hidden = true;
    ui.adminOpen.removeAttribute("aria-current");
    if (ui.confirm.open) { S.confirm = null; ui.confirm.close(); }
  }

  function closeAdmin(refocus) {
    leaveAdmin();
    if (S.active) show(S.active);
    else renderHeader();
    if (refocus) ui.message.focus();
  }

  function idleText(s) {
    if (s < 60) return `idle ${s} s`;
    if (s < 3600) return `idle ${Math.floor(s / 60)} min`;
    if (s < 86400) return `idle ${Math.floor(s / 3600)} h`;
    return `idle ${Math.floor(s / 86400)} d`;
  }

  function adminButton(text, label, key, onClick) {
    const b = el("button", "secondary", text);
    b.type = "button";
    b.setAttribute("aria-label", label);
    b.dataset.key = key;
    b.addEventListener("click", onClick);
    return b;
  }

  function adminItem(name, facts, extra) {
    const li = el("li");
    const what = el("div", "what");
    what.append(el("strong", null, name), el("span", "facts", facts.join(" · ")));
    if (extra) what.append(el("span", "topic", extra));
    li.append(what);
    return li;
  }

  // Every few seconds the lists are drawn again: the focus stays on the same button.
  function focusKey(key) {
    const target = key && [...ui.admin.querySelectorAll("[data-key]")].find((b) => b.dataset.key === key);
    if (target) target.focus();
    else ui.admin.focus();
  }

  function renderAdmin(m) {
    const a = document.activeElement;
    const lost = a && (ui.adminRooms.contains(a) || ui.adminUsers.contains(a)) ? a.dataset.key || "" : null;
    const rooms = Array.isArray(m.rooms) ? m.rooms : [];
    const users = Array.isArray(m.users) ? m.users : [];
    ui.adminRooms.textContent = "";
    for (const r of rooms) {
      const facts = [`${sizeText(r.count, r.limit)} ${r.count === 1 && !r.limit ? "person" : "people"}`];
      if (r.private) facts.push("private");
      if (r.keyed) facts.push("key");
      if (r.permanent) facts.push("everyone's room");
      const li = adminItem(r.name, facts, r.topic);
      if (!r.permanent) li.append(adminButton("Close", `Close room ${r.name}`, `close:${low(r.name)}`, () => confirmAction({
        title: `Close room ${r.name}?`,
        text: `Everyone in ${r.name} is told and removed, and the room is gone.`,
        go: "Close room",
        key: `close:${low(r.name)}`,
        run: (reason) => adminAct({ type: "close", room: r.name, reason }, `Room ${r.name} was closed.`),
      })));
      ui.adminRooms.append(li);
    }
    if (!rooms.length) ui.adminRooms.append(el("li", "hint", "No rooms."));
    ui.adminRoomsH.textContent = `Rooms (${rooms.length})`;
    ui.adminUsers.textContent = "";
    for (const u of users) {
      const rs = Array.isArray(u.rooms) ? u.rooms : [];
      const facts = [u.door, u.address, rs.length ? `in ${rs.join(", ")}` : "in no room", idleText(u.idle)];
      facts.push(u.account ? `account ${u.account}` : "guest");
      if (u.oper) facts.push("server operator");
      if (u.away) facts.push(`away: ${u.away}`);
      const me = low(u.name) === low(S.name);
      const li = adminItem(me ? `${u.name} (you)` : u.name, facts, "");
      if (!me) {
        li.append(adminButton("Remove", `Remove ${u.name} from the server`, `kill:${low(u.name)}`, () => confirmAction({
          title: `Remove ${u.name} from the server?`,
          text: `${u.name} is disconnected at once, and told the reason.`,
          go: "Remove",
          key: `kill:${low(u.name)}`,
          run: (reason) => adminAct({ type: "kill", name: u.name, reason }, `${u.name} was removed from the server.`),
        })));
      }
      ui.adminUsers.append(li);
    }
    ui.adminUsersH.textContent = `People online (${users.length})`;
    ui.adminUpdated.textContent = `Updated ${new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })}`;
    if (lost !== null && !ui.confirm.open) focusKey(lost);
  }

  // Asks before closing a room or removing someone, with an optional reason.
  function confirmAction(what) {
    S.confirm = what;
    ui.confirmTitle.textContent = what.title;
    ui.confirmText.textContent = what.text;
    ui.confirmGo.textContent = what.go;
    ui.confirmReason.value = "";
    ui.confirm.showModal();
    ui.confirmReason.focus();
  }

  // -- calls: audio and video straight between two browsers (WebRTC) ----------------------------
  // The server rings the other side and passes on the signalling (offer, answer,
  // ICE candidates); the media never goes through it. The caller makes the offer
  // once the call is accepted; candidates trickle over call_signal.

  // A call not connected this long after accepting gives up (tests may shorten it).
  const CONNECT_MS = Number(window.salasConnectMs) > 0 ? Number(window.salasConnectMs) : 20000;

  const live = (c) => !!c && !c.ended;

  function callButton(name, media) {
    const b = el("button", "secondary call-btn direct-only", media === "video" ? "Video" : "Audio");
    b.type = "button";
    b.setAttribute("aria-label", `${media === "video" ? "Video" : "Audio"} call with ${name}`);
    b.addEventListener("click", () => startCall(name, media));
    return b;
  }

  function newCall(peer, media, role, id) {
    return {
      id, peer, media, role, state: role === "caller" ? "calling" : "incoming", ended: false,
      pc: null, local: null, localReady: Promise.resolve(null), remote: null,
      chain: Promise.resolve(), cands: [], timer: 0, hangUp: false,
      note: "", endText: "", signalsIn: 0, signalsOut: 0, lastSignals: [],
    };
  }

  function startCall(name, media) {
    if (!S.direct) { showAlert("Calls are turned off on this server."); return; }
    if (!S.ready) { showAlert("Not connected yet."); return; }
    if (low(name) === low(S.name)) { showAlert("You can't call yourself."); return; }
    if (live(S.call)) { showAlert("You are in a call already: hang up first."); return; }
    const c = newCall(name, media, "caller", null);
    S.call = c;
    ui.incoming.hidden = true;
    renderCall();
    closeDrawer(false);
    ui.callHangup.focus();
    c.localReady = getMedia(c);
    send({ type: "call", to: name, media }, { what: "call", call: c });
  }

  // The camera and microphone; refused or missing, the call goes on with what
  // there is (audio only, or receiving only) and says so.
  async function getMedia(c) {
    const md = navigator.mediaDevices;
    let why = "";
    if (md && md.getUserMedia) {
      try {
        return showLocal(c, await md.getUserMedia({ audio: true, video: c.media === "video" }));
      } catch (err) {
        why = err && err.message ? err.message : String(err && err.name);
      }
      if (c.media === "video" && !c.ended) {
        try {
          const audio = await md.getUserMedia({ audio: true });
          mediaNote(c, `Camera or microphone not available: ${why}. Going on with sound only.`);
          return showLocal(c, audio);
        } catch (err) { /* no microphone either */ }
      }
    } else {
      why = "this browser gives no access to them here (the page must be on HTTPS or this computer)";
    }
    mediaNote(c, `Camera or microphone not available: ${why}. You can still hear${c.media === "video" ? " and see" : ""} ${c.peer}; they can't hear you.`);
    return null;
  }

  function showLocal(c, stream) {
    if (c.ended) { for (const t of stream.getTracks()) t.stop(); return null; }
    c.local = stream;
    renderCall();
    return stream;
  }

  function mediaNote(c, text) {
    c.note = text;
    if (S.call === c) renderCall();
  }

  function onCall(m) {
    const c = S.call;
    const mine = c && c.id === m.call ? c : null;
    switch (m.state) {
      case "ringing": {
        const meta = m.re !== undefined ? S.pending.get(m.re) : undefined;
        if (meta) S.pending.delete(m.re);
        const ours = meta && meta.call;
        if (!ours || ours.id !== null) return;
        ours.id = m.call;
        if (ours.ended || ours.hangUp) { send({ type: "call_end", call: m.call }, { what: "call_end" }); return; }
        ours.state = "ringing";
        if (S.call === ours) renderCall();
        return;
      }
      case "incoming":
        if (live(c)) {
          send({ type: "call_end", call: m.call, reason: `${S.name} is in another call` }, { what: "call_end" });
          return;
        }
        S.call = newCall(m.peer, m.media === "video" ? "video" : "audio", "callee", m.call);
        renderCall();
        ui.callAnnounce.textContent = `${m.peer} is calling you (${m.media === "video" ? "video" : "audio"} call). Accept or Decline at the top of the page.`;
        return;
      case "accepted":
        if (!live(mine)) return;
        mine.state = "connecting";
        renderCall();
        clearTimeout(mine.timer);
        mine.timer = setTimeout(() => {
          if (live(mine) && mine.state !== "connected") fail(mine, `no connection within ${CONNECT_MS / 1000} seconds (a TURN server may be needed between you)`);
        }, CONNECT_MS);
        queue(mine, async () => {
          await mine.localReady;
          if (mine.ended) return;
          makePeer(mine);
          if (mine.role === "caller") {
            await mine.pc.setLocalDescription(await mine.pc.createOffer());
            signal(mine, { sdp: mine.pc.localDescription });
          }
        });
        return;
      case "ended":
        if (!mine || mine.ended) return;
        finish(mine, `Call ended: ${m.reason || "hung up"}`);
        return;
      default:
    }
  }

  // Everything done to a call's connection, one at a time and in order.
  function queue(c, step) {
    c.chain = c.chain.then(step).catch((err) => {
      if (live(c)) fail(c, err && err.message ? err.message : String(err));
    });
  }

  function signal(c, data) {
    if (!live(c) || c.id === null) return;
    c.signalsOut += 1;
    send({ type: "call_signal", call: c.id, data }, { what: "call_signal" });
  }

  function onSignal(m) {
    const c = S.call;
    if (!live(c) || c.id !== m.call || !m.data || typeof m.data !== "object") return;
    c.signalsIn += 1;
    c.lastSignals.push(JSON.stringify(m.data).slice(0, 200));
    if (c.lastSignals.length > 30) c.lastSignals.shift();
    const data = m.data;
    queue(c, async () => {
      const pc = c.pc;
      if (!pc || c.ended) return;
      if (data.sdp && typeof data.sdp === "object") {
        await pc.setRemoteDescription(data.sdp);
        for (const cand of c.cands.splice(0)) await pc.addIceCandidate(cand);
        if (data.sdp.type === "offer") {
          await pc.setLocalDescription(await pc.createAnswer());
          signal(c, { sdp: pc.localDescription });
        }
      } else if (data.cand && typeof data.cand === "object") {
        if (pc.remoteDescription) await pc.addIceCandidate(data.cand);
        else c.cands.push(data.cand);
      }
    });
  }

  function makePeer(c) {
    const pc = new RTCPeerConnection({ iceServers: S.ice });
    c.pc = pc;
    c.remote = new MediaStream();
    ui.remoteVideo.srcObject = c.remote;
    const have = new Set();
    if (c.local) for (const t of c.local.getTracks()) { pc.addTrack(t, c.local); have.add(t.kind); }
    if (c.role === "caller") {
      // What we can't send we still want to receive.
      for (const kind of c.media === "video" ? ["audio", "video"] : ["audio"]) {
        if (!have.has(kind)) pc.addTransceiver(kind, { direction: "recvonly" });
      }
    }
    pc.addEventListener("icecandidate", (e) => { if (e.candidate) signal(c, { cand: e.candidate.toJSON() }); });
    pc.addEventListener("track", (e) => {
      if (!c.remote.getTracks().includes(e.track)) c.remote.addTrack(e.track);
      if (S.call === c) { ui.remoteVideo.srcObject = c.remote; ui.remoteVideo.play().catch(() => {}); }
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!live(c) || c.pc !== pc) return;
      const st = pc.connectionState;
      if (st === "connected") { c.state = "connected"; clearTimeout(c.timer); renderCall(); }
      else if (st === "disconnected" && c.state === "connected") { c.state = "interrupted"; renderCall(); }
      else if (st === "failed") fail(c, "the two browsers could not reach each other (a TURN server may be needed between you)");
    });
  }

  function fail(c, why) {
    const text = `Could not connect: ${why}`;
    if (c.id !== null) send({ type: "call_end", call: c.id, reason: text }, { what: "call_end" });
    finish(c, text);
  }

  function finish(c, text) {
    c.ended = true;
    c.state = "ended";
    c.endText = text;
    clearTimeout(c.timer);
    if (c.pc) { try { c.pc.close(); } catch (err) { /* closed */ } }
    if (c.local) for (const t of c.local.getTracks()) t.stop();
    if (S.call === c) {
      ui.remoteVideo.srcObject = null;
      ui.localVideo.srcObject = null;
      const refocus = ui.incoming.contains(document.activeElement) || ui.call.contains(document.activeElement);
      renderCall();
      if (refocus) ui.callClose.focus();
    }
    const conv = S.views.get(`@${low(c.peer)}`);
    if (conv) addEvent(conv, `${c.media === "video" ? "Video" : "Audio"} call with ${c.peer}: ${text}`, "notice");
  }

  // The page can't go on with the call (the connection dropped, logging out).
  function endCallHere(why) {
    const c = S.call;
    if (live(c)) finish(c, `Call ended: ${why}`);
  }

  function callRefused(meta, text) {
    const c = meta && meta.call;
    if (live(c)) finish(c, c.role === "caller" && c.id === null ? `Could not call ${c.peer}: ${text}` : `Call ended: ${text}`);
  }

  function hangUp() {
    const c = S.call;
    if (!live(c)) return;
    if (c.id === null) c.hangUp = true; // the ringing comes back and is ended then
    else send({ type: "call_end", call: c.id }, { what: "call_end" });
    finish(c, "Call ended: you hung up");
  }

  async function accept() {
    const c = S.call;
    if (!live(c) || c.state !== "incoming") return;
    c.state = "answering";
    renderCall();
    ui.callHangup.focus();
    c.localReady = getMedia(c);
    await c.localReady;
    if (!live(c)) return;
    send({ type: "call_answer", call: c.id, accept: true }, { what: "call_answer", call: c });
  }

  function decline() {
    const c = S.call;
    if (!live(c) || c.state !== "incoming") return;
    send({ type: "call_answer", call: c.id, accept: false }, { what: "call_answer", call: c });
    finish(c, "Call ended: you declined");
  }

  function closeCall() {
    if (live(S.call)) return;
    S.call = null;
    renderCall();
    ui.message.focus();
  }

  const STATE_TEXT = {
    calling: (c) => `Calling ${c.peer}…`,
    ringing: (c) => `Ringing ${c.peer}…`,
    answering: () => "Answering…",
    connecting: () => "Connecting…",
    connected: () => "Connected",
    interrupted: () => "Connection interrupted: trying to get it back…",
  };

  function renderCall() {
    const c = S.call;
    ui.incoming.hidden = !(c && c.state === "incoming" && !c.ended);
    ui.call.hidden = !c || !ui.incoming.hidden;
    if (!c) { ui.callAnnounce.textContent = ""; return; }
    const kind = c.media === "video" ? "Video" : "Audio";
    if (!ui.incoming.hidden) {
      ui.incomingTitle.textContent = `Incoming ${kind.toLowerCase()} call`;
      ui.incomingText.textContent = `${c.peer} is calling you.`;
      ui.incomingAccept.setAttribute("aria-label", `Accept the ${kind.toLowerCase()} call from ${c.peer}`);
      ui.incomingDecline.setAttribute("aria-label", `Decline the call from ${c.peer}`);
      return;
    }
    ui.callAnnounce.textContent = "";
    ui.callTitle.textContent = `${kind} call with ${c.peer}`;
    ui.callState.textContent = c.ended ? c.endText : STATE_TEXT[c.state](c);
    ui.call.dataset.state = c.state;
    ui.callNote.textContent = c.note;
    const video = c.media === "video";
    ui.remoteVideo.hidden = !video || c.ended;
    ui.remoteVideo.setAttribute("aria-label", `Video from ${c.peer}`);
    const cam = c.local && c.local.getVideoTracks()[0];
    const mic = c.local && c.local.getAudioTracks()[0];
    ui.localVideo.hidden = !cam || c.ended;
    if (cam && ui.localVideo.srcObject !== c.local) ui.localVideo.srcObject = c.local;
    ui.callMute.hidden = !mic || c.ended;
    ui.callCamera.hidden = !cam || c.ended;
    if (mic) { ui.callMute.setAttribute("aria-pressed", String(!mic.enabled)); }
    if (cam) { ui.callCamera.setAttribute("aria-pressed", String(!cam.enabled)); }
    ui.callHangup.hidden = c.ended;
    ui.callClose.hidden = !c.ended;
  }

  function toggleTrack(kind) {
    const c = S.call;
    const t = live(c) && c.local && (kind === "audio" ? c.local.getAudioTracks() : c.local.getVideoTracks())[0];
    if (!t) return;
    t.enabled = !t.enabled;
    renderCall();
  }

  // For tests and the curious: the call in view, as plain data.
  Object.defineProperty(window, "salasCall", {
    get: () => {
      const c = S.call;
      if (!c) return null;
      return {
        id: c.id, peer: c.peer, media: c.media, role: c.role, state: c.state, ended: c.ended,
        endText: c.endText, note: c.note, connectionState: c.pc ? c.pc.connectionState : null,
        signalsIn: c.signalsIn, signalsOut: c.signalsOut, lastSignals: c.lastSignals.slice(),
        remoteWidth: ui.remoteVideo.videoWidth, localTracks: c.local ? c.local.getTracks().map((t) => t.kind) : [],
      };
    },
  });

  // -- the drawer (narrow screens) -------------------------------------------------------------

  function openDrawer() {
    body.classList.add("drawer-open");
    ui.menu.setAttribute("aria-expanded", "true");
    ui.closeDrawer.focus();
  }
  function closeDrawer(refocus) {
    if (!body.classList.contains("drawer-open")) return;
    body.classList.remove("drawer-open");
    ui.menu.setAttribute("aria-expanded", "false");
    if (refocus) ui.menu.focus();
  }

  // -- wiring -----------------------------------------------------------------------------------

  function startSignIn(mode) {
    const name = ui.loginName.value.trim();
    const password = ui.loginPassword.value;
    ui.loginError.textContent = "";
    if (mode === "register" && (!name || !password)) {
      ui.loginError.textContent = "To register, give a name and a password.";
      (name ? ui.loginPassword : ui.loginName).focus();
      return;
    }
    if (mode === "login" && !name) {
      ui.loginError.textContent = "Give your account's name to log in.";
      ui.loginName.focus();
      return;
    }
    S.mode = mode;
    S.name = mode === "login" ? "" : name;
    S.loginName = name;
    S.password = mode === "guest" ? "" : password;
    S.account = null;
    S.signedOut = false;
    S.everReady = false;
    S.loginFail = "";
    S.auto = false;
    ui.loginGo.disabled = ui.registerGo.disabled = true;
    connect();
  }

  ui.loginForm.addEventListener("submit", (event) => {
    event.preventDefault();
    startSignIn(ui.loginPassword.value ? "login" : "guest");
  });
  ui.registerGo.addEventListener("click", () => startSignIn("register"));

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.message.value;
    if (!text.trim()) return;
    let sent;
    if (text.startsWith("/") && !text.startsWith("//")) sent = command(text.trim());
    else sent = say(text.startsWith("//") ? text.slice(1) : text, "say");
    if (sent) ui.message.value = "";
  });

  ui.message.addEventListener("keydown", (event) => {
    if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    const keys = [...ui.roomList.children, ...ui.convList.children]
      .map((li) => [...S.views.values()].find((v) => v.li === li))
      .filter(Boolean).map((v) => v.key);
    const at = keys.indexOf(S.active);
    if (!keys.length) return;
    event.preventDefault();
    const next = keys[(at + (event.key === "ArrowUp" ? keys.length - 1 : 1)) % keys.length];
    show(next);
  });

  ui.createForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = ui.createName.value.trim().replace(/^#/, "");
    const limit = ui.createLimit.value ? Number(ui.createLimit.value) : null;
    if (!name) { ui.createName.focus(); return; }
    if (!S.ready) { showAlert("Not connected yet."); return; }
    createRoom(name, limit);
    ui.createName.value = "";
    ui.createLimit.value = "";
    closeDrawer(false);
    ui.message.focus();
  });

  ui.topicForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const v = activeView();
    if (!v || v.kind !== "room" || !S.ready) return;
    send({ type: "topic", room: v.name, text: ui.topicInput.value }, { what: "topic" });
  });

  ui.leave.addEventListener("click", () => {
    const v = activeView();
    if (v && v.kind === "room") leaveRoom(v, "");
  });
  ui.logout.addEventListener("click", () => signOut(""));
  ui.refresh.addEventListener("click", () => send({ type: "list" }, { what: "list" }));
  ui.browse.addEventListener("toggle", () => { if (ui.browse.open) send({ type: "list" }, { what: "list" }); });

  ui.adminOpen.addEventListener("click", openAdmin);
  ui.adminBack.addEventListener("click", () => closeAdmin(true));
  ui.adminRefresh.addEventListener("click", pollOverview);
  ui.broadcastForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.broadcastText.value.trim();
    if (!text) { ui.broadcastText.focus(); return; }
    adminAct({ type: "broadcast", text }, "Broadcast sent to everyone online.");
    ui.broadcastText.value = "";
  });
  ui.confirmForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const what = S.confirm;
    S.confirm = null;
    ui.confirm.close();
    if (what) { what.run(ui.confirmReason.value.trim()); focusKey(what.key); }
  });
  ui.confirmCancel.addEventListener("click", () => ui.confirm.close());
  ui.confirm.addEventListener("close", () => {
    // The event comes a moment after the dialog closed: if it was opened
    // again meanwhile, the question now standing is the new one's.
    if (ui.confirm.open) return;
    const what = S.confirm; // still set: cancelled (Cancel or Escape)
    S.confirm = null;
    if (what && S.admin) focusKey(what.key);
  });

  ui.pmAudio.addEventListener("click", () => { const v = activeView(); if (v && v.kind === "pm") startCall(v.name, "audio"); });
  ui.pmVideo.addEventListener("click", () => { const v = activeView(); if (v && v.kind === "pm") startCall(v.name, "video"); });
  ui.incomingAccept.addEventListener("click", accept);
  ui.incomingDecline.addEventListener("click", decline);
  ui.callHangup.addEventListener("click", hangUp);
  ui.callClose.addEventListener("click", closeCall);
  ui.callMute.addEventListener("click", () => toggleTrack("audio"));
  ui.callCamera.addEventListener("click", () => toggleTrack("video"));

  ui.menu.addEventListener("click", () => {
    if (body.classList.contains("drawer-open")) closeDrawer(true);
    else openDrawer();
  });
  ui.closeDrawer.addEventListener("click", () => closeDrawer(true));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && body.classList.contains("drawer-open")) {
      event.preventDefault();
      closeDrawer(true);
    }
  });
  document.addEventListener("pointerdown", (event) => {
    if (body.classList.contains("drawer-open") && !ui.drawer.contains(event.target) && !ui.menu.contains(event.target)) {
      closeDrawer(false);
    }
  });
  window.addEventListener("online", () => { if (!S.ws && !S.signedOut && S.everReady) connect(); });

  // A page reloaded in the same tab goes back in as the same guest, to the same rooms.
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
    ui.loginName.value = localStorage.getItem("salas-name") || "";
  } catch (err) { saved = null; }
  if (saved && saved.name && !saved.account) {
    for (const r of saved.rooms || []) if (r && r.name) S.wanted.set(low(r.name), { name: r.name, key: r.key || null });
    for (const n of saved.convs || []) if (typeof n === "string") convView(n);
    S.mode = "guest";
    S.name = saved.name;
    S.restore = typeof saved.active === "string" ? saved.active : null;
    if (S.restore && S.views.has(S.restore)) { show(S.restore); S.restore = null; }
    S.signedOut = false;
    S.auto = true;
    ui.loginGo.disabled = ui.registerGo.disabled = true;
    connect();
  } else if (saved && saved.account) {
    ui.loginName.value = saved.name;
    ui.loginPassword.focus();
  }
})();

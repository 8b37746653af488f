/**
 * The pause a polling loop (a relay, a receiver) takes between rounds: it
 * ends after `ms`, or at once when `wake()` is called. A wake that comes
 * while the loop is busy is remembered, so the next pause returns at once and
 * no signal is lost. After `stop()`, every pause returns at once.
 */
export interface WakeablePause {
  pause(ms: number): Promise<void>;
  wake(): void;
  stop(): void;
}

export function createWakeablePause(): WakeablePause {
  let woken = false;
  let stopped = false;
  let cut: (() => void) | undefined;
  return {
    pause(ms) {
      return new Promise<void>((resolve) => {
        if (woken || stopped) {
          woken = false;
          resolve();
          return;
        }
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          cut = undefined;
          woken = false;
          resolve();
        }
        cut = done;
      });
    },
    wake() {
      woken = true;
      cut?.();
    },
    stop() {
      stopped = true;
      cut?.();
    },
  };
}

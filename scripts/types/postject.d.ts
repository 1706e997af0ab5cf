// postject (the Node project's resource injector for single executables) ships no types; this is the one
// function scripts/build.ts calls.
declare module 'postject' {
  export function inject(
    filename: string,
    resourceName: string,
    resourceData: Buffer,
    options?: { sentinelFuse?: string; overwrite?: boolean; machoSegmentName?: string },
  ): Promise<void>;
}

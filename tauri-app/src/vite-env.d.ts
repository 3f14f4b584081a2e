/// <reference types="vite/client" />

interface ImportMetaEnv {
  readonly VITE_KENSA_URL?: string;
  readonly VITE_KENSA_TOKEN?: string;
}

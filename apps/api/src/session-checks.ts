/**
 * The checks of a session's canvas state beyond its message schema: the state as a whole (as the
 * generation request it stands for) and the mask images of the regions just set, read from their
 * header only (no bombs). Problems name regions by id.
 */
import { CanvasState, FieldProblem, RequestLimits, SessionSpec, canvasRequest, checkCanvasState } from '@farm/contracts';
import { checkRequestImages } from './request-images';

export async function canvasStateProblems(state: CanvasState, spec: SessionSpec, limits: RequestLimits, newRegions: readonly string[]): Promise<FieldProblem[]> {
  const whole = checkCanvasState(state, spec, limits);
  if (whole.length > 0) return whole;
  const regions = Object.fromEntries(newRegions.map((id) => [id, state.regions[id]]));
  const images = await checkRequestImages(canvasRequest({ ...state, regions }, spec), limits);
  return images.map((p) => ({ ...p, path: p.path.replace(/^regions\.(\d+)/, (_, i: string) => `regions.${newRegions[Number(i)]}`) }));
}

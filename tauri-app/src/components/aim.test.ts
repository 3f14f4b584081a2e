import { describe, expect, it } from 'vitest';
import { aimRoi, grabScale } from './aim';

// The aiming box of styles.css: inset 20% 25% of the camera frame.
const target = (left: number, top: number, width: number, height: number) => ({
  left: left + width * 0.25,
  top: top + height * 0.2,
  width: width * 0.5,
  height: height * 0.6,
});

describe('aimRoi', () => {
  it('maps a box on a picture filling its element', () => {
    // 640x360 element showing a 1920x1080 picture grabbed at 1280x720.
    const roi = aimRoi({ left: 0, top: 0, width: 640, height: 360 }, target(0, 0, 640, 360), 1920, 1080, 2 / 3, 'contain', 0);
    expect(roi).toBe('320,144,640,432');
  });

  it('leaves out the letterbox of object-fit contain and the element offset', () => {
    // A 4:3 picture (640x480) in a 800x300 element at (10, 20): shown 400x300, 200 px bars.
    const element = { left: 10, top: 20, width: 800, height: 300 };
    expect(aimRoi(element, target(10, 20, 800, 300), 640, 480, 1, 'contain', 0)).toBe('0,96,640,288');
  });

  it('takes the cut edges of object-fit cover into account', () => {
    // 640x480 picture covering 400x100: shown 400x300, 100 px cut above and below.
    const element = { left: 0, top: 0, width: 400, height: 100 };
    expect(aimRoi(element, target(0, 0, 400, 100), 640, 480, 1, 'cover', 0)).toBe('160,192,320,96');
  });

  it('stretches with object-fit fill', () => {
    const element = { left: 0, top: 0, width: 100, height: 100 };
    expect(aimRoi(element, target(0, 0, 100, 100), 200, 400, 1, 'fill', 0)).toBe('50,80,100,240');
  });

  it('grows the box by the margin and clips it to the frame', () => {
    const element = { left: 0, top: 0, width: 100, height: 100 };
    // The box itself: 25..75 x 20..80; grown by half its size on each side it passes the edges.
    expect(aimRoi(element, target(0, 0, 100, 100), 100, 100, 1, 'fill', 0.5)).toBe('0,0,100,100');
    expect(aimRoi(element, target(0, 0, 100, 100), 100, 100, 1, 'fill', 0.1)).toBe('20,14,60,72');
  });

  it('gives up on unknown sizes and on a box off the picture', () => {
    const element = { left: 0, top: 0, width: 100, height: 100 };
    expect(aimRoi(element, target(0, 0, 100, 100), 0, 0, 1)).toBeNull();
    expect(aimRoi({ ...element, width: 0 }, target(0, 0, 100, 100), 100, 100, 1)).toBeNull();
    expect(aimRoi(element, { left: 500, top: 0, width: 10, height: 10 }, 100, 100, 1, 'fill', 0)).toBeNull();
  });
});

describe('grabScale', () => {
  it('shrinks only frames longer than the edge', () => {
    expect(grabScale(1920, 1080, 1280)).toBeCloseTo(2 / 3);
    expect(grabScale(640, 480, 1280)).toBe(1);
    expect(grabScale(1080, 1920, 1280)).toBeCloseTo(2 / 3);
    expect(grabScale(4000, 3000, null)).toBe(1);
  });
});
